"""Tasks, registered by name: what a run of each does, from its stages to how its report and bundle are read.

A task is a package under compress/tasks/ whose ``__init__`` defines ``TASK = Task(...)``: its stages in order
and its hooks, named as ``"module:function"`` strings so that asking for a task imports nothing heavy (``compress
verify`` runs without torch). ``REGISTRY`` below is the one place a task is registered; ``register`` adds one at
run time (a plugin, or a test's toy task). Outside compress/tasks/ no module asks which task it is in: the
pipeline runs ``get(cfg.task).stage_modules()``, and the commands call the task's hooks.

Hooks (each optional but ``stages``):

    rules(cfg) -> list[str]                   what the task refuses at load, one line each (validate and run)
    check_models(cfg) -> None                 the model files the config names (compress validate, before a run)
    check_data(cfg, console) -> dict          the data read as the stages read it, nothing written (compress validate,
                                              the preflight)
    preflight(cfg, console, device) -> dict   the data and memory checks made before a run writes anything
    summary(console, run_dir, report, wide)   the terminal table of compress run and compress report (a Report;
                                              wide: every column, compress/reports/terminal.py)
    markdown(report) -> str                   report.md of a Report record (compress report)
    html(report) -> str                       report.html of a Report record (compress report)
    sweep_figures(report) -> dict             a sweep point's figures from its Report: {"metric", "teacher",
                                              "point"} (compress/reports/sweep.py says what each holds)
    bundle_check(bundle, model, golden, manifest) -> Check   the golden replay of compress verify (a Manifest)
    golden_tolerance() -> dict[str, float]    how far each golden output may be off in that replay, fixed in the
                                              task's code (never read from a bundle): {"logits": 1e-3}
    generate(bundle, prompt, **options) -> Iterator[str]      compress generate: the reply, streamed (files checked)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable

from compress import config
from compress.errors import CompressError

REGISTRY: dict[str, str] = {
    "sequence-classification": "compress.tasks.classification",
    "causal-lm": "compress.tasks.causal_lm",
}
REPORT_KEY = "task"  # the key of report.json, golden.json and manifest.json that names the task


@dataclass(frozen=True)
class Task:
    name: str
    summary_line: str  # what the task does, one line (compress tasks, errors)
    stages: tuple[str, ...]  # stage modules, in the order they run
    hooks: dict[str, str] = field(default_factory=dict)  # hook name -> "module:function"
    comparable: bool = True  # compress compare and the comparison page read its reports

    def stage_modules(self) -> list[ModuleType]:
        return [importlib.import_module(m) for m in self.stages]

    def config_sections(self) -> list[str]:
        """The config sections its stages read (their CONFIG keys' first parts), in the order the stages read them:
        what a run of this task hashes and may use; the rest of the config is refused by its rules or left alone."""
        return list(dict.fromkeys(key.split(".")[0] for stage in self.stage_modules() for key in stage.CONFIG))

    def has(self, hook: str) -> bool:
        return hook in self.hooks

    def hook(self, name: str) -> Callable:
        if name not in self.hooks:
            raise CompressError(f"task {self.name}: has no {name} (its hooks: {', '.join(self.hooks) or 'none'})")
        module, _, function = self.hooks[name].partition(":")
        return getattr(importlib.import_module(module), function)


def register(name: str, package: str) -> None:
    """Add (or replace) a task: ``package`` is imported when the task is first asked for."""
    REGISTRY[name] = package


def names() -> list[str]:
    return list(REGISTRY)


def default() -> str:
    return next(iter(REGISTRY))


def get(name: str | None) -> Task:
    """The registered task of that name (None: the default); an unknown name lists the registered ones."""
    name = name or default()
    if name not in REGISTRY:
        raise CompressError(f"task: {name!r} is not a registered task; registered: {', '.join(REGISTRY)}")
    task = importlib.import_module(REGISTRY[name]).TASK
    if task.name != name:
        raise CompressError(f"task: {REGISTRY[name]} defines task {task.name!r}, registered as {name!r}")
    return task


def of_report(report: dict) -> Task:
    """The task a report.json, golden.json or manifest.json (as read, a dict) was written by (older files without
    the key: the default task, the only one that wrote none). A Report record's is ``get(report.task)``."""
    name = report.get(REPORT_KEY) if isinstance(report, dict) else None
    return get(name if isinstance(name, str) else None)


def load_config(path, overrides: list[str] | None = None, runs_dir=config.DEFAULT_RUNS):
    """A pipeline file read and validated as compress validate and compress run read it: the config's own checks,
    then what its task refuses (for a sweep, every point's too); ``runs_dir``: where compress run puts run folders."""
    return config.load_config(path, overrides, rules=refusals, runs_dir=runs_dir)


def validate_config(raw: dict):
    """A raw mapping validated as :func:`load_config` validates a file (a sweep point's)."""
    return config.validate_config(raw, rules=refusals)


def refusals(cfg) -> list[str]:
    """What the config's task refuses (the config's own checks are done by then); an unknown task is one line."""
    try:
        task = get(cfg.task)
    except CompressError as exc:
        return exc.problems
    return task.hook("rules")(cfg) if task.has("rules") else []
