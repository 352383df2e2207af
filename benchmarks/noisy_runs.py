"""Are the speedups of a run on a busy machine trustworthy? Runs a pipeline several times in a row while other
processes load every core, and checks what each run claims against the others.

    python benchmarks/noisy_runs.py [pipelines/tiny.yaml] [--runs 3] [--load 2] [--out benchmarks/results/noisy_runs.json]

``--reuse`` checks the finished runs again (their stages are skipped; the summary is printed again) without
rerunning them. ``--load N`` starts N busy Python processes (at the same priority) before the first run and stops them after the
last; 0 runs on the machine as it is. Each run goes to its own folder under benchmarks/runs/noisy/<i>/ (its bundle
beside it), is printed at 200 columns and read back from report.json. For every speedup (each variant on each
target case, against the teacher measured in the same run), over the runs:

- an **unflagged** speedup must lie within 2x of the median of that speedup over the runs (both ways);
- a **flagged** one (its own rounds or its reference's disagree, or sit under the timer's resolution) must be marked
  wherever it is written: the terminal summary (home target; ``!``), report.md, report.html and, for the shipped
  variant, the bundle's model card.

Prints each failure and writes JSON (every speedup, its flags, the medians, the failures, the CPU and the load
averages); exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from compress.bench import rounds
from compress.envinfo import cpu_model
from compress.records import read_report
from compress.tasks.classification.summary import speedup_cell

ROOT = Path(__file__).resolve().parents[1]
BUSY = "import time\nwhile True:\n    time.perf_counter()\n"


def _flat(text: str) -> str:
    """Text with its tags and every space gone: a figure wrapped or split over spans still matches."""
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]+>", "", text)))


def run_once(pipeline: str, folder: Path, overrides: list[str], reuse: bool = False) -> dict:
    if not reuse:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, COLUMNS="200", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "compress", "run", pipeline, "--runs-dir", str(folder / "runs"),
                           "--wide", f"ship.dir={folder / 'exports'}", *overrides],
                          check=False, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{folder}: compress run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    run_dir = next(p for p in (folder / "runs").iterdir() if not p.name.startswith("."))
    report = read_report(run_dir / "report.json")
    bundle = next((folder / "exports").iterdir(), None)
    card = (bundle / "README.md").read_text() if bundle else ""
    shipped = json.loads((bundle / "manifest.json").read_text())["variant"] if bundle else None
    places = {"terminal": proc.stdout, "report.md": (run_dir / "report.md").read_text(),
              "report.html": _flat((run_dir / "report.html").read_text()), "model card": _flat(card)}
    speedups = []
    for v in report.variants:
        home = v.speedup_flags
        for key, m in v.measurements.items():
            if m.speedup is None:
                continue
            entry = {"variant": v.name, "case": key, "speedup": m.speedup, "range": m.speedup_range,
                     "flags": m.speedup_flags, "missing_marks": []}
            if m.speedup_flags:
                text = rounds.speedup_text(m.speedup, m.speedup_range, m.speedup_flags)
                if text not in places["report.md"]:
                    entry["missing_marks"].append("report.md")
                if _flat(text) not in places["report.html"]:
                    entry["missing_marks"].append("report.html")
                if home == m.speedup_flags and m.speedup == v.speedup:  # the home target case: the terminal's row
                    row = next((line for line in proc.stdout.splitlines()
                                if line.startswith("│") and f"│ {v.name} " in line), "")
                    if speedup_cell(v) not in row:
                        entry["missing_marks"].append("terminal")
                    card_figure = _flat(f"{v.speedup:.2f}x the teacher's speed")  # and its flags after it
                    card_line = places["model card"].partition(card_figure)[2][:200]
                    if v.name == shipped and (card_figure not in places["model card"]
                                              or _flat(rounds.tag(v.speedup_flags)) not in card_line):
                        entry["missing_marks"].append("model card")
            speedups.append(entry)
    (folder / "terminal.txt").write_text(proc.stdout)
    return {"folder": str(run_dir), "seconds": round(seconds, 1), "shipped": shipped,
            "speedups": speedups}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline", nargs="?", default="pipelines/tiny.yaml")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--load", type=int, default=2, help="busy processes started beside the runs")
    ap.add_argument("--out", default="benchmarks/results/noisy_runs.json")
    ap.add_argument("--reuse", action="store_true", help="keep finished runs (their stages are skipped: only the "
                    "terminal summary is printed again) and check them again")
    args = ap.parse_args()
    load = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(0 if args.reuse else args.load)]
    try:
        before = os.getloadavg()
        runs = [run_once(args.pipeline, ROOT / "benchmarks" / "runs" / "noisy" / str(i), args.overrides, args.reuse)
                for i in range(args.runs)]
        after = os.getloadavg()
    finally:
        for p in load:
            p.kill()
    failures = []
    keys = {(s["variant"], s["case"]) for r in runs for s in r["speedups"]}
    medians = {}
    for variant, case in sorted(keys):
        seen = [s for r in runs for s in r["speedups"] if (s["variant"], s["case"]) == (variant, case)]
        mid = statistics.median(s["speedup"] for s in seen)
        medians[f"{variant} @ {case}"] = mid
        for i, s in enumerate(seen):
            if not s["flags"] and not (mid / 2 <= s["speedup"] <= mid * 2):
                failures.append(f"run {i}: {variant} @ {case}: unflagged {s['speedup']:.2f}x, median {mid:.2f}x")
            if s["missing_marks"]:
                failures.append(f"run {i}: {variant} @ {case}: flagged {s['flags']} but not marked in "
                                f"{', '.join(s['missing_marks'])}")
    flagged = sum(bool(s["flags"]) for r in runs for s in r["speedups"])
    total = sum(len(r["speedups"]) for r in runs)
    result = {"pipeline": args.pipeline, "overrides": args.overrides, "runs": runs, "load_processes": args.load,
              "loadavg_before": before, "loadavg_after": after, "cpu": cpu_model(), "cores": os.cpu_count(),
              "medians": medians, "speedups": total, "flagged": flagged, "failures": failures,
              "date": time.strftime("%Y-%m-%d")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.runs} runs of {args.pipeline} beside {args.load} busy processes on {cpu_model()} "
          f"(load {before[0]:.1f} -> {after[0]:.1f}): {total} speedups, {flagged} flagged")
    for name, mid in medians.items():
        line = [f"{s['speedup']:.2f}x{'!' if s['flags'] else ''}" for r in runs for s in r["speedups"]
                if f"{s['variant']} @ {s['case']}" == name]
        print(f"  {name}: median {mid:.2f}x; runs {', '.join(line)}")
    for line in failures:
        print(f"FAIL {line}")
    print(f"{'ok' if not failures else 'failed'}: {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
