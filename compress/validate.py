"""``compress validate``: which arguments are pipeline files and which are overrides, and the checks of one file,
made without writing anything: its config and overrides (with its task's refusals), its local model folders, and
its data read as ``compress run`` reads it (the task's ``check_data`` hook, which the preflight calls too).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from compress import tasks
from compress.config import DEFAULT_RUNS, is_local_path
from compress.config.sweep import expand
from compress.errors import CompressError


def split_arguments(arguments: list[str]) -> tuple[list[Path], list[str]]:
    """compress validate's arguments: one that names an existing file or ends in .yaml/.yml is a pipeline file (one
    not found says so); any other is an override (one without '=' says so, as compress run does)."""
    is_file = [_is_file(a) or a.lower().endswith((".yaml", ".yml")) for a in arguments]
    files = [Path(a) for a, f in zip(arguments, is_file) if f]
    overrides = [a for a, f in zip(arguments, is_file) if not f]
    if not files:
        raise CompressError(f"validate: no pipeline file among {' '.join(arguments)} (give a YAML file, then "
                            "key=value overrides)")
    return files, overrides


def _is_file(argument: str) -> bool:
    try:
        return Path(argument).is_file()
    except (OSError, ValueError):  # longer than a file name may be (an override such as name=<300 characters>)
        return False


@dataclass
class Checked:
    """What compress validate says of one file: its ok line, or every problem found; the data's warnings."""

    ok: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_file(pipeline: Path, overrides: list[str], runs_dir: Path = DEFAULT_RUNS) -> Checked:
    """Every problem of one pipeline file: its config first, with every check compress run makes at load
    (``runs_dir``: where the run folder would go; nothing else is checked when it does not load), then its model
    folders and its data."""
    try:
        cfg = tasks.load_config(pipeline, overrides, runs_dir=runs_dir)
        task = tasks.get(cfg.task)
    except CompressError as exc:
        return Checked(problems=exc.problems)
    problems = []
    captured = io.StringIO()  # the data's warnings, given back as lines that name the file
    console = Console(file=captured, color_system=None, highlight=False, soft_wrap=True)
    data = "data not checked"
    checks = [("check_models", (cfg,))]
    if task.has("check_data"):
        if cfg.data.source == "generated" or is_local_path(cfg.data.source):
            checks.append(("check_data", (cfg, console)))
            data = "data checked"
        else:
            data = f"data not read: hub dataset {cfg.data.source}, which compress run downloads"
    for hook, args in checks:
        if task.has(hook):
            try:
                task.hook(hook)(*args)
            except CompressError as exc:
                problems += exc.problems
    warnings = [line.removeprefix("warning ") for line in captured.getvalue().splitlines() if line.strip()]
    if problems:
        return Checked(problems=problems, warnings=warnings)
    if cfg.sweep is not None:
        ok = f"{pipeline}: ok (sweep '{cfg.name}', {len(expand(cfg.sweep))} points, config {cfg.hash()}; {data})"
    else:
        ok = f"{pipeline}: ok (run '{cfg.name}', config {cfg.hash()}; {data})"
    return Checked(ok=ok, warnings=warnings)
