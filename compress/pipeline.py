"""The recipe: plan which stages must run, run them in order, skip what is finished.

A stage is finished when ``runs/<name>/<stage>/stage.json`` is a whole record (its stage, ``done``,
the inputs hash, start and finish times, seconds; compress.records.whole_stage) and its
``inputs_hash`` (its slice of the config plus the hashes of the stages it reads) is
unchanged: a truncated or partial stage.json means the stage runs again. Each stage writes into a temporary
folder that replaces the old one only when the stage succeeds, with ``stage.json`` written last: a killed run
leaves either the old result or none, never half of one. A finished stage is skipped only when every file its
record lists is still what it wrote (compress.stagefiles); ``--from STAGE`` reruns a stage and every stage after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Callable

from compress import layout as files
from compress import records, stagefiles, tasks
from compress.config import PipelineConfig, dump_yaml
from compress.envinfo import environment, resolve_device
from compress.errors import CompressError
from compress.io import atomic_dir, write_json, write_text


@dataclass
class Context:
    """What a stage may use: the config, the run folder, its own output folder, the console."""

    cfg: PipelineConfig
    run_dir: Path
    console: object
    out: Path = Path()
    device: str = "cpu"
    checkpoint_dir: Path | None = None  # training state of the running stage, kept until it finishes
    runs_dir: Path | None = None  # where the shared teacher-output cache lives (.cache/); None = run_dir's parent

    @property
    def layout(self) -> files.RunLayout:
        """Every path of the run folder: how a stage finds the files of the stages it reads."""
        return files.RunLayout(self.run_dir)


def stages(cfg: PipelineConfig) -> list[ModuleType]:
    """The stages of the config's task, in the order they run (compress/tasks/)."""
    return tasks.get(cfg.task).stage_modules()


def inputs_hash(stage: ModuleType, cfg: PipelineConfig, upstream: dict[str, str]) -> str:
    # Settings left at their defaults are not hashed: a new option added with a default does not
    # make finished stages of older runs look changed.
    dumped = cfg.model_dump(mode="json", exclude_defaults=True)
    payload = {
        "stage": stage.NAME,
        "version": getattr(stage, "VERSION", 1),
        "config": {key: _get_path(dumped, key) for key in stage.CONFIG if _has_path(dumped, key)},
        "upstream": {dep: upstream[dep] for dep in stage.DEPENDS},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _get_path(tree: dict, dotted: str):
    """``distill.train`` -> tree["distill"]["train"]: a stage may depend on part of a section."""
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _has_path(tree: dict, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def finished(stage: ModuleType, cfg: PipelineConfig, run_dir: Path, expected_hash: str) -> bool:
    """Done, with the same inputs, and whatever it wrote outside its folder still there."""
    record = files.RunLayout(run_dir).record(stage.NAME)
    if not record.is_file():
        return False
    if not all(p.exists() for p in _outputs(stage, cfg, run_dir)):
        return False
    done = records.whole_stage(record, stage.NAME)  # None: truncated, partial, or another stage's record
    return done is not None and done.inputs_hash == expected_hash


def forced(cfg: PipelineConfig, rerun_from: str | None) -> set[str]:
    """The stages ``--from STAGE`` reruns: that one and every stage after it."""
    if rerun_from is None:
        return set()
    names = [s.NAME for s in stages(cfg)]
    if rerun_from not in names:
        raise CompressError(f"--from: {rerun_from!r} is not a stage of a {cfg.task} pipeline; its stages, in order: "
                            + ", ".join(names))
    return set(names[names.index(rerun_from):])


def plan(cfg: PipelineConfig, run_dir: Path, rerun_from: str | None = None) -> list[tuple[ModuleType, str, bool]]:
    """(stage, inputs_hash, will_run) for every stage, in order; ``rerun_from``: rerun that stage and every one after."""
    hashes: dict[str, str] = {}
    out = []
    reruns: set[str] = set()
    force = forced(cfg, rerun_from)
    for stage in stages(cfg):
        h = inputs_hash(stage, cfg, hashes)
        hashes[stage.NAME] = h
        # A stage reruns when its inputs changed, its outputs are gone, or a stage it reads reruns
        # (that stage's outputs may differ even when its settings did not: it was deleted or killed).
        if stage.NAME in force or not finished(stage, cfg, run_dir, h) or reruns & set(stage.DEPENDS):
            reruns.add(stage.NAME)
        out.append((stage, h, stage.NAME in reruns))
    return out


def share(cfg: PipelineConfig, run_dir: Path, donors: list[Path], rerun_from: str | None = None) -> dict[str, Path]:
    """Copy into ``run_dir`` every stage it has not finished that a donor run folder finished with the same
    inputs hash (so the same config slice and the same upstream hashes: the same result) and whose files are still
    what it wrote. Files are hard links (stages never change a file in place), so a sweep's points hold one
    teacher on disk. Stages that write outside their folder (the report) and stages ``--from`` reruns are never
    shared. Returns {stage: the donor it came from}."""
    shared = {}
    force = forced(cfg, rerun_from)
    for stage, h, _ in plan(cfg, run_dir):
        if getattr(stage, "outputs", None) or stage.NAME in force or finished(stage, cfg, run_dir, h):
            continue
        donor = next((d for d in donors if d.resolve() != run_dir.resolve() and finished(stage, cfg, d, h)
                      and not stage_problems(stage, cfg, d)), None)
        if donor is None:
            continue
        with atomic_dir(run_dir / stage.NAME) as tmp:
            shutil.copytree(donor / stage.NAME, tmp, dirs_exist_ok=True, copy_function=_link_or_copy)
            record = records.read_stage(tmp / files.STAGE_FILE)
            record.shared_from = str(donor)
            records.write(tmp / files.STAGE_FILE, record)  # a new file, not the donor's
        shared[stage.NAME] = donor
    return shared


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def run(cfg: PipelineConfig, runs_dir: Path, console, run_dir: Path | None = None,
        share_from: list[Path] | tuple = (), rerun_from: str | None = None,
        rerun_command: Callable[[str], str] | None = None) -> Path:
    """Run the stages that are not finished. Under ``accelerate launch`` / ``torchrun`` every process
    runs this: training stages (``DISTRIBUTED = True``) run on all of them, the others on the main
    process only, and only the main process writes the run folder.

    ``run_dir`` defaults to ``runs_dir/<name>``; ``share_from``: other run folders whose finished stages
    with the same inputs are reused instead of recomputed (a sweep's points); ``rerun_from``: rerun that stage and
    every stage after it, even where finished; ``rerun_command(stage)``: the command line that does so, named
    when a finished stage's file changed since."""
    from accelerate import PartialState

    device = resolve_device(cfg.device)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    state = PartialState(cpu=device == "cpu")
    main = state.is_main_process
    run_dir = run_dir or runs_dir / cfg.name
    forced(cfg, rerun_from)  # a --from that names no stage is refused before anything is written
    shared = share(cfg, run_dir, list(share_from), rerun_from) if main and share_from else {}
    state.wait_for_everyone()  # the shared stages are in place before any process plans
    steps = plan(cfg, run_dir, rerun_from)
    # A finished stage whose files changed since, bad data and unsafe or damaged model files stop the run here,
    # before it writes anything; doubtful data and a run that would not fit in memory are warned about (every
    # process checks; the main one speaks).
    damaged = check_skipped(steps, cfg, run_dir, rerun_command)
    if damaged:
        raise CompressError(*damaged)
    task = tasks.get(cfg.task)
    checks = task.hook("preflight")(cfg, console, device) if task.has("preflight") and any(r for _, _, r in steps) else {}
    state.wait_for_everyone()  # every process has read the same plan before anything is written
    with _exclusive(run_dir, main):  # a second run on this folder would clobber its temporary folders
        _write_run_files(cfg, run_dir, steps, checks, main)
        state.wait_for_everyone()
        ctx = Context(cfg=cfg, run_dir=run_dir, console=console, device=device, runs_dir=runs_dir)
        processes = f", {state.num_processes} processes" if state.num_processes > 1 else ""
        console.print(f"[bold]compress[/] run [cyan]{cfg.name}[/] -> {run_dir}  (device: {device}{processes}, "
                      f"config {cfg.hash()})")
        started = time.perf_counter()
        _run_stages(steps, ctx, state, main, shared)
        console.print(f"pipeline finished in {time.perf_counter() - started:.1f}s")
    return run_dir


def _write_run_files(cfg, run_dir: Path, steps, checks: dict, main: bool) -> None:
    if main:
        where = files.RunLayout(run_dir)
        write_text(where.config, dump_yaml(cfg))
        write_json(where.env, environment())
        write_json(where.plan, [{"stage": s.NAME, "inputs_hash": h, "run": r} for s, h, r in steps])
        if checks:
            write_json(where.preflight, checks)


def _run_stages(steps, ctx: Context, state, main: bool, shared: dict) -> None:
    """Each stage in order: skipped when finished with the same inputs, else run into a temporary folder."""
    from transformers import set_seed

    cfg, console = ctx.cfg, ctx.console
    for stage, h, will_run in steps:
        if not will_run:
            why = (f"shared: the same inputs finished in {shared[stage.NAME]}" if stage.NAME in shared
                   else "finished earlier, inputs and files unchanged")
            if main:  # a run killed between a stage's rename and its cleanup leaves the checkpoint behind
                shutil.rmtree(ctx.layout.checkpoint(stage.NAME, h), ignore_errors=True)
            console.print(f"[green]skip[/] {stage.NAME:<9} {why}")
            continue
        everywhere = getattr(stage, "DISTRIBUTED", False)
        if main or everywhere:
            console.rule(f"[bold]{stage.NAME}")
            ctx.checkpoint_dir = ctx.layout.checkpoint(stage.NAME, h)
            if main:
                ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            t0, begun = time.perf_counter(), _now()
            with _output_dir(ctx.layout.stage(stage.NAME), main) as tmp:
                ctx.out = tmp
                set_seed(cfg.seed)  # every stage starts from the same random state: reruns reproduce it
                metrics = stage.run(cfg, ctx) or {}
                record = records.StageRecord(stage=stage.NAME, status="done", inputs_hash=h, started=begun,
                                             finished=_now(), seconds=round(time.perf_counter() - t0, 1), metrics=metrics)
                if main:  # what a later run checks before it skips the stage
                    record.files = stagefiles.folder_digests(tmp)
                    record.outputs = stagefiles.output_digests(_outputs(stage, cfg, ctx.run_dir), ctx.run_dir)
                    records.write(tmp / files.STAGE_FILE, record)  # last: its presence means the stage is complete
            if main:
                shutil.rmtree(ctx.checkpoint_dir, ignore_errors=True)
            console.print(f"[green]done[/] {stage.NAME:<9} {record.seconds:.1f}s")
        state.wait_for_everyone()


def _outputs(stage: ModuleType, cfg: PipelineConfig, run_dir: Path) -> list[Path]:
    """What the stage writes outside its folder (the report's files, the bundle)."""
    return getattr(stage, "outputs", lambda cfg, run_dir: [])(cfg, run_dir)


def stage_problems(stage: ModuleType, cfg: PipelineConfig, run_dir: Path) -> list[tuple[Path, str]]:
    """(path, what is wrong) for each file of a finished stage that is not what it wrote (compress.stagefiles)."""
    folder = files.RunLayout(run_dir).stage(stage.NAME)
    record = records.whole_stage(folder / files.STAGE_FILE, stage.NAME)
    return [] if record is None else stagefiles.problems(record, folder, _outputs(stage, cfg, run_dir), run_dir)


def check_skipped(steps: list[tuple[ModuleType, str, bool]], cfg: PipelineConfig, run_dir: Path,
                  rerun_command: Callable[[str], str] | None = None) -> list[str]:
    """Every finished stage about to be skipped, against the sha256 and size of each file its stage.json recorded:
    one line per file changed, missing or added since, with the command that reruns that stage (never skipped,
    or read, silently)."""
    command = rerun_command or (lambda name: f"compress run <pipeline> --from {name}")
    lines = []
    for stage, _, will_run in steps:
        if not will_run:
            lines += [f"{path}: {what}; rerun it with: {command(stage.NAME)}"
                      for path, what in stage_problems(stage, cfg, run_dir)]
    return lines


@contextlib.contextmanager
def _exclusive(run_dir: Path, main: bool):
    """Hold ``run_dir/.lock`` for the whole run (the main process; POSIX file locks, released however the process
    ends, a kill included); another run on the same folder is refused, naming it, instead of clobbering it."""
    if not main:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(files.RunLayout(run_dir).lock, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise CompressError(f"{run_dir}: another compress run (pid {holder}) is using this run folder; wait for it "
                                f"to finish or stop it, then run again") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _output_dir(final: Path, main: bool):
    """The main process writes into a folder that replaces ``final`` on success; the others into scratch."""
    if main:
        with atomic_dir(final) as tmp:
            yield tmp
        return
    with tempfile.TemporaryDirectory(prefix=f"compress-{final.name}-") as scratch:
        yield Path(scratch)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
