"""The table compress run prints at the end of a causal-LM run: perplexity and generation speed per variant."""

from __future__ import annotations

from pathlib import Path

from compress.layout import RunLayout
from compress.records import Report
from compress.reports.perplexity import generation_flag


def summary(console, run_dir: Path, report: Report) -> None:
    from rich.table import Table  # rich's tables are only needed here

    where = RunLayout(run_dir)
    table = Table(title=f"{report.name}: every variant against the teacher (perplexity on held-out text; "
                  "generation at batch 1, cpu)")
    for col in ("variant", "format", "precision", "size MB", "perplexity", "retention", "first token ms", "tokens/s",
                "peak MiB"):
        table.add_column(col, justify="left" if col in ("variant", "format", "precision") else "right")
    for v in report.variants:
        table.add_row(v.name, v.format, v.precision, f"{v.size_bytes / 1e6:.1f}", f"{v.perplexity:.3f}",
                      f"{v.perplexity_retention:.1%}", _fmt(v.time_to_first_token_ms, ".1f") + ("!" if v.flags else ""),
                      _fmt(v.tokens_per_second, ".1f") + ("!" if v.flags else ""),
                      _fmt(v.peak_memory_bytes / 2**20 if v.peak_memory_bytes else None, ".0f"))
    console.print(table)
    for v in report.variants:
        for target, m in v.measurements.items():
            if m.flags:
                console.print(f"! {generation_flag(v.name, target, m)}", highlight=False)
    console.print(f"report: {where.report_md} (data: {where.report_json})")


def _fmt(x, spec: str) -> str:
    return format(x, spec) if x is not None else "-"
