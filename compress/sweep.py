"""Sweeps: the pipeline run once per point of a grid or a list of named settings.

    compress run pipelines/distilbert-sweep.yaml

A ``sweep:`` block turns a pipeline file into a study. ``grid`` maps dotted config keys to lists of
values (every combination is a point); ``points`` lists named settings, each crossed with the grid keys
it does not set itself, so a hard-labels-only point can fix the temperature while the others sweep it:

    sweep:
      grid: {distill.temperature: [1, 2, 4, 8], student.layers: [[0, 2, 4], [0, 3]]}
      points:
        - {name: hard, distill.alpha: 1.0, distill.temperature: 1}   # 2 points (one per student)
        - {name: soft, distill.alpha: 0.0}                           # 8 points

Each point is the base config with its settings applied as ``key=value`` overrides (defaults < YAML <
command line < the point), checked like any config when the file is loaded, and run as an ordinary
pipeline in ``runs/<name>/points/<point>/``. Stages a point shares with an earlier one (same inputs
hash: the teacher, usually the student) are linked from it, not recomputed, and every point reads
the teacher-output cache under ``<runs-dir>/.cache``. A finished point is kept when the command runs
again; ``budget_minutes`` stops starting points once that much time has passed. The summary is
``runs/<name>/sweep.json``, ``sweep.md`` and ``sweep.html`` (compress/reports/sweep.py).

Working out the points and checking them when the file is loaded is compress/config/sweep.py (nothing
run, nothing written); this module runs them, and re-exports those names (``from compress.sweep import
expand`` still works).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from rich.markup import escape

from compress import pipeline as recipe
from compress import tasks
from compress.config import PipelineConfig, load_raw
from compress.config.sweep import Point, expand, point_config
from compress.errors import CompressError
from compress.layout import POINTS_DIR, SWEEP_MD
from compress.reports import sweep as sweepreport


def run(pipeline: Path, overrides: list[str], cfg: PipelineConfig, runs_dir: Path, console,
        rerun_from: str | None = None, rerun_command: Callable[[str], str] | None = None) -> Path:
    """Run every point not finished yet, in order, then write the sweep summary; returns runs/<name>.
    ``rerun_from``: rerun that stage and every one after it in every point; ``rerun_command(stage)``: the command
    that does so, named when a finished point's file changed since."""
    raw = load_raw(pipeline, overrides)
    sweep = cfg.sweep
    points = expand(sweep)
    sweep_dir = runs_dir / cfg.name
    points_dir = sweep_dir / POINTS_DIR
    budget = sweep.budget_minutes
    console.print(f"[bold]compress[/] sweep [cyan]{cfg.name}[/]: {len(points)} points -> {points_dir}"
                  + (f" (budget {budget:g} minutes)" if budget else ""))
    started = time.perf_counter()
    records = []
    for i, point in enumerate(points, 1):
        pcfg = point_config(raw, point, tasks.validate_config)
        run_dir = points_dir / point.name
        record = {"name": point.name, "entry": point.entry, "grid": point.grid, "settings": point.settings,
                  "overrides": point.overrides, "run_dir": str(run_dir)}
        minutes = (time.perf_counter() - started) / 60
        steps = recipe.plan(pcfg, run_dir, rerun_from)
        changed = [] if any(r for _, _, r in steps) else recipe.check_skipped(steps, pcfg, run_dir, rerun_command)
        if changed:  # finished, but a file is not what its stage wrote: not kept, and not rerun silently
            console.print(f"[red]failed[/] point {point.name}: {escape('; '.join(changed))}")
            records.append({**record, "status": "failed", "reason": "; ".join(changed)})
        elif not any(will_run for _, _, will_run in steps):
            console.print(f"[green]skip[/] point {i}/{len(points)} {point.name}: finished earlier, inputs and files "
                          f"unchanged")
            records.append({**record, "status": "kept"})
        elif budget is not None and minutes > budget:
            reason = f"budget: {minutes:.1f} of sweep.budget_minutes {budget:g} spent before it could start"
            console.print(f"[yellow]skip[/] point {i}/{len(points)} {point.name}: {reason}")
            records.append({**record, "status": "skipped", "reason": reason})
        else:
            console.rule(f"[bold]point {i}/{len(points)}: {point.name}[/]  {escape(' '.join(point.overrides))}")
            donors = sorted(d for d in points_dir.iterdir() if d.is_dir()) if points_dir.is_dir() else []
            t0 = time.perf_counter()
            try:
                recipe.run(pcfg, runs_dir, console, run_dir=run_dir, share_from=donors, rerun_from=rerun_from,
                           rerun_command=rerun_command)
            except CompressError as exc:  # recorded; the other points still run
                console.print(f"[red]failed[/] point {point.name}: {escape('; '.join(exc.problems))}")
                records.append({**record, "status": "failed", "reason": "; ".join(exc.problems)})
            else:
                records.append({**record, "status": "done", "seconds": round(time.perf_counter() - t0, 1)})
        # after every point: a killed sweep still has the summary of what finished
        sweepreport.write(sweep_dir, cfg, pipeline, overrides, records + _pending(points[i:], points_dir),
                          round(time.perf_counter() - started, 1), point_figures)
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        raise CompressError(*(f"sweep point {r['name']} failed: {r['reason']}" for r in failed),
                            f"the other points' results are in {sweep_dir / SWEEP_MD}")
    return sweep_dir


def point_figures(report) -> dict:
    """What the sweep keeps of one point's report.json: its task's ``sweep_figures`` hook."""
    return tasks.get(report.task).hook("sweep_figures")(report)


def _pending(points: list[Point], points_dir: Path) -> list[dict]:
    return [{"name": p.name, "entry": p.entry, "grid": p.grid, "settings": p.settings, "overrides": p.overrides,
             "run_dir": str(points_dir / p.name), "status": "pending"} for p in points]
