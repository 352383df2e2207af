"""Run a sweep from scratch and record its wall time and its table.

    python benchmarks/sweep.py pipelines/distilbert-sweep.yaml [--runs-dir DIR] [--resume] [key=value ...]

Runs `compress run` on the sweep in a fresh runs folder (default benchmarks/runs/, not committed; its
teacher-output cache starts empty too), times the whole command and writes
benchmarks/results/<name>.json: wall time, every point's settings and figures (sweep.json's), the
teacher, the frontier and the environment. --resume keeps the folder (finished points are kept) and
adds this command's wall time to the ones already in the results file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from compress.layout import CACHE_DIR, SWEEP_JSON

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    runs = ROOT / "benchmarks" / "runs"
    resume = "--resume" in argv
    argv = [a for a in argv if a != "--resume"]
    if "--runs-dir" in argv:
        i = argv.index("--runs-dir")
        runs = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    pipeline, overrides = argv[0], argv[1:]
    import yaml

    name = yaml.safe_load(Path(pipeline).read_text())["name"]
    name = next((o.split("=", 1)[1] for o in overrides if o.startswith("name=")), name)
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    earlier = []
    if resume and out.is_file():
        before = json.loads(out.read_text())
        earlier = before.get("invocations") or [{k: before[k] for k in ("overrides", "exit_code", "wall_seconds")}]
    if not resume:
        shutil.rmtree(runs / name, ignore_errors=True)
        shutil.rmtree(runs / CACHE_DIR, ignore_errors=True)  # from scratch: the teacher's outputs are computed again
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "compress", "run", pipeline, "--runs-dir", str(runs), *overrides])
    wall = time.perf_counter() - started
    sweep_json = runs / name / SWEEP_JSON
    if not sweep_json.is_file():
        print(f"compress run failed with exit code {proc.returncode} before any point finished", file=sys.stderr)
        return proc.returncode or 1
    summary = json.loads(sweep_json.read_text())
    env = next((json.loads((Path(p["run_dir"]) / "env.json").read_text()) for p in summary["points"]
                if (Path(p["run_dir"]) / "env.json").is_file()), None)
    metric = summary.get("metric") or {"key": "accuracy", "columns": []}  # the task's figures (compress/tasks/*/sweep.py)
    keep = tuple(dict.fromkeys(("name", "status", "overrides", "temperature", "alpha", "student", "parameters", "accuracy",
                                "accuracy_ci95", "retention", "variant", "size_bytes", "variant_accuracy", "p50_ms",
                                *(c[1] for c in metric["columns"]), "distill_seconds", "seconds", "reason")))
    result = {
        "pipeline": pipeline,
        "overrides": overrides,
        "exit_code": proc.returncode,
        "wall_seconds": round(wall + sum(i["wall_seconds"] for i in earlier), 1),
        "invocations": earlier + [{"overrides": overrides, "resumed": resume, "exit_code": proc.returncode,
                                   "wall_seconds": round(wall, 1)}],
        "metric": summary.get("metric"),
        "eval": summary["eval"],
        "teacher": summary["teacher"],
        "points": [{k: p[k] for k in keep if k in p} for p in summary["points"]],
        "frontier": summary["frontier"],
        "environment": env,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{name}: wall time {wall / 60:.1f} min (all invocations {result['wall_seconds'] / 60:.1f}), "
          f"exit code {proc.returncode}")
    key = metric["key"]
    print(f"{'point':<36}{'T':>4}{'alpha':>6}  {'student':<20}{key[:12]:>13}{'retention':>10}{'size MB':>9}")
    for p in result["points"]:
        if p.get(key) is not None:
            print(f"{p['name']:<36}{p['temperature']:>4g}{p['alpha']:>6g}  {p['student'][:20]:<20}{p[key]:>13.4f}"
                  f"{p['retention']:>10.1%}{p['size_bytes'] / 1e6:>9.1f}")
        else:
            print(f"{p['name']:<36}  {p['status']}")
    print(f"wrote {out}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
