"""The toy task's report.json, through the typed record every task writes."""

from __future__ import annotations

from pathlib import Path

from compress import records
from compress.io import read_json
from compress.layout import RunLayout

NAME = "report"
DEPENDS = ("count",)
CONFIG = ("name",)


def outputs(cfg, run_dir: Path) -> list[Path]:
    return [RunLayout(run_dir).report_json]


def run(cfg, ctx) -> dict:
    counted = read_json(ctx.layout.stage("count") / "count.json")
    report = records.Report(schema_version=records.SCHEMA_VERSION, name=cfg.name, task="word-count",
                            created="2026-01-01T00:00:00+00:00", config_hash=cfg.hash(), reference="text",
                            variants=[], words=counted["words"])
    records.write(ctx.layout.report_json, report)
    return {"words": counted["words"]}


def refuse(cfg) -> list[str]:
    return ["quantize.enabled: word-count quantizes nothing; set it to false"] if cfg.quantize.enabled else []


def summary(console, run_dir: Path, report: records.Report, wide: bool = False) -> None:
    console.print(f"word-count: {report.get('words')} words")
