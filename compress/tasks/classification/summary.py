"""The table compress run (and compress report) prints for a classification run: every variant against the
teacher. On a narrow terminal the columns go in the order of ``drop`` (p99 first; variant, accuracy and speedup
always stay); ``--wide`` shows every one (compress.reports.terminal)."""

from __future__ import annotations

from pathlib import Path

from compress.bench import rounds
from compress.layout import RunLayout
from compress.records import Report
from compress.reports.terminal import Column, table

COLUMNS = [Column("variant", right=False), Column("format", right=False, drop=2),
           Column("precision", right=False, drop=3), Column("size MB", drop=7), Column("accuracy"),
           Column("retention", drop=6), Column("speedup"), Column("p50 ms", drop=5), Column("p99 ms", drop=1),
           Column("peak MiB", drop=4)]


def rows(report: Report) -> list[list[str]]:
    return [[v.name, v.format, v.precision, f"{v.size_bytes / 1e6:.1f}", f"{v.accuracy:.4f}", f"{v.retention:.1%}",
             speedup_cell(v), f"{v.latency_ms.p50:.2f}", f"{v.latency_ms.p99:.2f}",
             f"{v.peak_memory_bytes / 2**20:.0f}"] for v in report.variants]


def summary(console, run_dir: Path, report: Report, wide: bool = False) -> None:
    where = RunLayout(run_dir)
    table(console, f"{report.name}: every variant against the teacher (PyTorch fp32)", COLUMNS, rows(report), wide)
    tolerance = report.latency_rounds.noise_tolerance if report.latency_rounds else None
    for line in rounds.flagged_lines(report.variants, tolerance, report.reference):
        console.print(f"! {line}", highlight=False)
    console.print(f"report: {where.report_md}, {where.report_html} (data: {where.report_json})")


def speedup_cell(v) -> str:
    """``2.31x (2.10-2.52)``: the speedup and its interval over rounds; ``!`` after it when it is flagged (its
    variant's or its reference's rounds disagree, or are under the timer's resolution): the lines under the
    table say which and why."""
    return rounds.speedup_text(v.speedup, v.speedup_range, None) + ("!" if v.speedup_flags else "")
