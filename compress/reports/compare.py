"""Finished runs read back from their report.json: ``compress report`` re-renders one or puts several side by
side, ``compress compare`` gates a new run against a base one (for CI: exit 1 on a regression)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from compress.errors import CompressError
from compress.layout import REPORT_JSON as REPORT_FILE
from compress.layout import STAGE_FILE
from compress.records import Report, Variant
from compress.reports.terminal import Column

VARIANT_KEYS = ("name", "role", "format", "precision", "parameters", "size_bytes", "accuracy", "retention",
                "agreement_with_teacher", "speedup", "latency_ms", "peak_memory_bytes")


@dataclass
class Run:
    label: str  # how tables and plots name it
    path: Path  # the run folder
    report: dict  # as read, for the renderers

    @functools.cached_property
    def record(self) -> Report:
        return Report.model_validate(self.report)


def load_run(given: Path, readable: Callable[[dict, Path], str | None] | None = None) -> Run:
    """A run folder holding report.json, or a report.json itself; one clear error when it is neither, or
    when the run never reached its report stage. ``readable(report, path)``: the error line for a report the
    caller cannot read (None when it can), asked before the report's keys are checked."""
    given = Path(given)
    if given.is_dir():
        path, run_dir = given / REPORT_FILE, given
        if not path.is_file():
            stages = sorted(p.name for p in given.iterdir() if (p / STAGE_FILE).is_file())
            found = f"finished stages: {', '.join(stages)}" if stages else "no finished stage"
            raise CompressError(f"{given}: no {REPORT_FILE}: not a finished run ({found}; the report stage writes "
                                "it: run compress run again to finish the run)")
    elif given.is_file():
        path, run_dir = given, given.parent
    else:
        raise CompressError(f"{given}: not found (give a run folder, runs/<name>, or its {REPORT_FILE})")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompressError(f"{path}: not a valid report.json ({exc})") from None
    refused = readable(report, path) if readable else None
    if refused:
        raise CompressError(refused)
    problem = _schema_problem(report)
    if problem:
        raise CompressError(f"{path}: not a compress report.json: {problem}")
    return Run(str(report["name"]), run_dir, report)


def _schema_problem(report) -> str | None:
    """What a report needs for tables, plots and the gate; None when it has all of it."""
    if not isinstance(report, dict):
        return f"expected a JSON object, found {type(report).__name__}"
    for key in ("name", "target", "eval", "distill", "environment", "variants"):
        if key not in report:
            return f"no '{key}' key"
    if not isinstance(report["variants"], list) or not report["variants"]:
        return "'variants' is not a non-empty list"
    for i, v in enumerate(report["variants"]):
        missing = [k for k in VARIANT_KEYS if not isinstance(v, dict) or k not in v]
        if missing:
            return f"variants[{i}] has no {', '.join(missing)}"
        if not isinstance(v["latency_ms"], dict) or "p50" not in v["latency_ms"]:
            return f"variants[{i}].latency_ms has no p50"
    return None


def load_runs(paths: list[Path], readable: Callable[[dict, Path], str | None] | None = None) -> list[Run]:
    """Every run, each problem reported at once; runs sharing a name are told apart by their folder."""
    runs, problems = [], []
    for path in paths:
        try:
            runs.append(load_run(path, readable))
        except CompressError as exc:
            problems += exc.problems
    if problems:
        raise CompressError(*problems)
    names = [r.label for r in runs]
    for name in set(names):
        same = [r for r in runs if r.label == name]
        if len(same) > 1:
            for r, folder in zip(same, folder_names([r.path for r in same])):
                r.label = folder if folder.endswith(name) else f"{name} ({folder})"
    labels = [r.label for r in runs]
    for i, r in enumerate(runs):  # the same folder given twice
        if labels.count(r.label) > 1:
            r.label = f"{r.label} #{labels[:i + 1].count(r.label)}"
    return runs


def folder_names(paths: list[Path]) -> list[str]:
    """The shortest trailing parts of each folder that tell them apart: runs/a/tiny and runs/b/tiny are a/tiny
    and b/tiny; the same folder twice stays the same (its whole path)."""
    parts = [Path(p).resolve().parts for p in paths]
    for n in range(1, max(len(p) for p in parts) + 1):
        tails = ["/".join(p[-n:]) for p in parts]
        if len(set(tails)) == len(set(parts)):
            return tails
    return [str(Path(*p)) for p in parts]


def retention(report: Report, variant: Variant) -> float | None:
    """accuracy / the reference's accuracy, from the accuracies themselves (as report.json's retention)."""
    ref = report.variant(report.reference)
    if ref is None:
        return variant.retention
    return variant.accuracy / ref.accuracy if ref.accuracy else None


@dataclass
class Change:
    """One variant present in both runs."""

    name: str
    base: Variant
    new: Variant
    base_retention: float | None
    new_retention: float | None

    @property
    def retention_drop_points(self) -> float | None:
        if self.base_retention is None or self.new_retention is None:
            return None
        return (self.base_retention - self.new_retention) * 100

    @property
    def unchanged(self) -> bool:
        """The same model in both runs: its files have the same sha256 (a stage skipped, or rebuilt to the same
        bytes). Whatever its figures did, that is the machine or the data, not the model: never a regression."""
        return bool(self.base.sha256) and self.base.sha256 == self.new.sha256

    def latencies(self) -> list[Latencies]:
        """Its p50 on the home target case (``None``), then on every other target case both runs measured it on;
        only the home one for a report.json from before targets."""
        out = [Latencies(None, self.base.latency_ms.p50, self.new.latency_ms.p50, self.base.p50_range_ms,
                         self.new.p50_range_ms)]
        base, new = self.base.measurements, self.new.measurements
        home = {self.base.get("measured_on"), self.new.get("measured_on")}
        out += [Latencies(key, base[key].latency_ms.p50, new[key].latency_ms.p50, base[key].p50_range_ms,
                          new[key].p50_range_ms)
                for key in base if key in new and key not in home and base[key].latency_ms and new[key].latency_ms]
        return out


@dataclass
class Latencies:
    """One variant's p50 on one target case in both runs, with each run's spread over rounds (min, max)."""

    case: str | None  # None: the variant's home case (its top-level figures)
    base: float
    new: float
    base_range: list[float] | None  # None: a report.json from before rounds
    new_range: list[float] | None

    @property
    def increase_percent(self) -> float:
        return (self.new / self.base - 1) * 100

    @property
    def spread(self) -> float:
        """The larger of the two runs' spreads (max - min of the rounds' p50s), ms; 0 where not measured."""
        return max([r[1] - r[0] for r in (self.base_range, self.new_range) if r] or [0.0])

    def regressed(self, limit_percent: float) -> bool:
        """Slower by more than ``limit_percent`` and by more than either run's spread over rounds."""
        return self.increase_percent > limit_percent and self.new - self.base > self.spread

    def describe(self, name: str, limit_percent: float) -> str:
        where = f" on {self.case}" if self.case else ""
        text = (f"{name}: p50 latency{where} grew {self.increase_percent:.1f}% ({self.base:.2f} ms -> "
                f"{self.new:.2f} ms), more than the {limit_percent:g}% allowed by --max-latency-increase")
        if self.base_range or self.new_range:
            text += f" and than the runs' spread over rounds ({_range(self.base_range)}; {_range(self.new_range)})"
        return text


def _range(r: list[float] | None) -> str:
    return f"{r[0]:.2f}-{r[1]:.2f} ms" if r else "not measured"


def changes(base: Report, new: Report) -> tuple[list[Change], list[str], list[str]]:
    """(the variants in both, in the base run's order; names only in base; names only in new)."""
    new_by = {v.name: v for v in new.variants}
    base_names = [v.name for v in base.variants]
    common = [Change(v.name, v, new_by[v.name], retention(base, v), retention(new, new_by[v.name]))
              for v in base.variants if v.name in new_by]
    return (common, [n for n in base_names if n not in new_by], [v.name for v in new.variants if v.name not in base_names])


def regressions(common: list[Change], max_retention_drop: float, max_latency_increase: float) -> list[str]:
    """One line per variant over a limit: its name, both figures, the change and the limit. A latency is over
    only when it grew by more than the limit and by more than both runs' spread over rounds; an unchanged
    variant (the same sha256 in both runs) is never over."""
    out = []
    for c in common:
        if c.unchanged:
            continue
        drop = c.retention_drop_points
        if drop is not None and drop > max_retention_drop:
            out.append(f"{c.name}: retention fell {drop:.2f} points ({c.base_retention:.2%} -> {c.new_retention:.2%}; "
                       f"accuracy {c.base.accuracy:.4f} -> {c.new.accuracy:.4f}), more than the "
                       f"{max_retention_drop:g} allowed by --max-retention-drop")
        out += [lat.describe(c.name, max_latency_increase) for lat in c.latencies() if lat.regressed(max_latency_increase)]
    return out


def within_noise(common: list[Change], max_latency_increase: float) -> list[str]:
    """One line per latency that grew by more than the limit but not by more than the runs' spread over rounds:
    noise, said so, not a regression."""
    return [f"{c.name}: p50{f' on {lat.case}' if lat.case else ''} {lat.base:.2f} -> {lat.new:.2f} ms "
            f"({lat.increase_percent:+.1f}%), within the runs' spread over rounds ({_range(lat.base_range)}; "
            f"{_range(lat.new_range)})"
            for c in common if not c.unchanged for lat in c.latencies()
            if lat.increase_percent > max_latency_increase and not lat.regressed(max_latency_increase)]


def target_differences(base: Report, new: Report) -> list[str]:
    """Settings that make latencies incomparable: CPU, threads, batch, sequence length."""
    out = []
    targets = [r.get("target") or {} for r in (base, new)]
    for key in ("threads", "batch_size", "sequence_length"):
        if targets[0].get(key) != targets[1].get(key):
            out.append(f"{key} {targets[0].get(key)} vs {targets[1].get(key)}")
    cpus = [r.environment.get("cpu") for r in (base, new)]
    if cpus[0] != cpus[1]:
        out.append(f"CPU {cpus[0]} vs {cpus[1]}")
    return out


def table(base: Run, new: Run, common: list[Change]):
    """(title, columns, rows): each figure in both runs and its change, for compress.reports.terminal.table. On a
    narrow terminal the base -> new pairs go first (peak memory, size, accuracy, retention, latency), then the
    changes of peak memory and size; the variant and the changes of accuracy, retention and latency always stay."""
    title = f"{new.record.name} ({new.path}) against the base run {base.record.name} ({base.path})"
    pair_drop = {"accuracy": 3, "retention": 4, "p50 ms": 5, "size MB": 2, "peak MiB": 1}
    change_drop = {"size MB": 7, "peak MiB": 6}
    columns = [Column("variant", right=False)]
    for col in ("accuracy", "retention", "p50 ms", "size MB", "peak MiB"):
        columns += [Column(f"{col}\nbase -> new", drop=pair_drop[col]),
                    Column(f"{col}\nchange", drop=change_drop.get(col))]
    rows = []
    for c in common:
        b, n = c.base, c.new
        cells = [c.name]
        cells += [f"{b.accuracy:.4f} -> {n.accuracy:.4f}", f"{(n.accuracy - b.accuracy) * 100 + 0.0:+.2f} pt"]
        if c.retention_drop_points is None:
            cells += ["-", "-"]
        else:
            cells += [f"{c.base_retention:.1%} -> {c.new_retention:.1%}", f"{-c.retention_drop_points + 0.0:+.2f} pt"]
        for key, fmt in ((lambda v: v.latency_ms.p50, "{:.2f}"), (lambda v: v.size_bytes / 1e6, "{:.1f}"),
                         (lambda v: v.peak_memory_bytes / 2**20, "{:.0f}")):
            old, now = key(b), key(n)
            cells += [f"{fmt.format(old)} -> {fmt.format(now)}", f"{(now / old - 1) * 100 + 0.0:+.1f}%" if old else "-"]
        rows.append(cells)
    return title, columns, rows
