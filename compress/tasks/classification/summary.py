"""The table compress run prints at the end of a classification run: every variant against the teacher."""

from __future__ import annotations

from pathlib import Path

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
                      f"{v.retention:.1%}", f"{v.speedup:.2f}x", f"{v.latency_ms.p50:.2f}",
                      f"{v.latency_ms.p99:.2f}", f"{v.peak_memory_bytes / 2**20:.0f}")
    console.print(table)
    console.print(f"report: {where.report_md}, {where.report_html} (data: {where.report_json})")
