"""The table compress run prints at the end of a classification run: every variant against the teacher."""

from __future__ import annotations

from pathlib import Path

from compress.bench import rounds
from compress.layout import RunLayout
from compress.records import Report


def summary(console, run_dir: Path, report: Report) -> None:
    from rich.table import Table  # rich's tables are only needed here

    where = RunLayout(run_dir)
    table = Table(title=f"{report.name}: every variant against the teacher (PyTorch fp32)")
    for col in ("variant", "format", "precision", "size MB", "accuracy", "retention", "speedup", "p50 ms", "p99 ms", "peak MiB"):
        table.add_column(col, justify="left" if col in ("variant", "format", "precision") else "right")
    for v in report.variants:
        table.add_row(v.name, v.format, v.precision, f"{v.size_bytes / 1e6:.1f}", f"{v.accuracy:.4f}",
                      f"{v.retention:.1%}", speedup_cell(v), f"{v.latency_ms.p50:.2f}",
                      f"{v.latency_ms.p99:.2f}", f"{v.peak_memory_bytes / 2**20:.0f}")
    console.print(table)
    tolerance = report.latency_rounds.noise_tolerance if report.latency_rounds else None
    for line in rounds.flagged_lines(report.variants, tolerance, report.reference):
        console.print(f"! {line}", highlight=False)
    console.print(f"report: {where.report_md}, {where.report_html} (data: {where.report_json})")


def speedup_cell(v) -> str:
    """``2.31x (2.10-2.52)``: the speedup and its interval over rounds; ``!`` after it when it is flagged (its
    variant's or its reference's rounds disagree, or are under the timer's resolution): the lines under the
    table say which and why."""
    return rounds.speedup_text(v.speedup, v.speedup_range, None) + ("!" if v.speedup_flags else "")
