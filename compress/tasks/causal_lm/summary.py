"""The table compress run prints at the end of a causal-LM run: perplexity and generation speed per variant.
On a narrow terminal the columns go in the order of ``drop``; ``--wide`` shows every one
(compress.reports.terminal)."""

from __future__ import annotations

from pathlib import Path

from compress.layout import RunLayout
from compress.records import Report
from compress.reports.perplexity import generation_flag
from compress.reports.terminal import Column, table

COLUMNS = [Column("variant", right=False), Column("format", right=False, drop=2),
           Column("precision", right=False, drop=3), Column("size MB", drop=5), Column("perplexity"),
           Column("retention", drop=6), Column("first token ms", drop=1), Column("tokens/s"),
           Column("peak MiB", drop=4)]


def rows(report: Report) -> list[list[str]]:
    return [[v.name, v.format, v.precision, f"{v.size_bytes / 1e6:.1f}", f"{v.perplexity:.3f}",
             f"{v.perplexity_retention:.1%}", _fmt(v.time_to_first_token_ms, ".1f") + ("!" if v.flags else ""),
             _fmt(v.tokens_per_second, ".1f") + ("!" if v.flags else ""),
             _fmt(v.peak_memory_bytes / 2**20 if v.peak_memory_bytes else None, ".0f")] for v in report.variants]


def summary(console, run_dir: Path, report: Report, wide: bool = False) -> None:
    where = RunLayout(run_dir)
    table(console, f"{report.name}: every variant against the teacher (perplexity on held-out text; generation at "
          "batch 1, cpu)", COLUMNS, rows(report), wide)
    for v in report.variants:
        for target, m in v.measurements.items():
            if m.flags:
                console.print(f"! {generation_flag(v.name, target, m)}", highlight=False)
    console.print(f"report: {where.report_md} (data: {where.report_json})")


def _fmt(x, spec: str) -> str:
    return format(x, spec) if x is not None else "-"
