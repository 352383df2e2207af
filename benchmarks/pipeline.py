"""Run a pipeline from scratch and record its wall time and its figures.

    python benchmarks/pipeline.py pipelines/distilbert.yaml [key=value ...]

Runs `compress run` in a fresh runs folder (benchmarks/runs/, not committed; the run's folder and
the teacher-output cache benchmarks/runs/.cache are removed first, so the teacher's pass over the
distillation data is timed as a new user's first run pays it), times the whole command, prints the
figures of every variant and writes
benchmarks/results/<name>.json: wall time, stage times, and per variant the accuracy,
retention, speedup, size and latency against the teacher, with the environment (task causal-lm:
perplexity and its retention, time to first token, tokens per second, peak memory).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from compress.layout import CACHE_DIR, RunLayout

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    pipeline, overrides = argv[0], argv[1:]
    import yaml

    name = yaml.safe_load(Path(pipeline).read_text())["name"]
    name = next((o.split("=", 1)[1] for o in overrides if o.startswith("name=")), name)
    runs = ROOT / "benchmarks" / "runs"
    shutil.rmtree(runs / name, ignore_errors=True)
    shutil.rmtree(runs / CACHE_DIR, ignore_errors=True)  # content-addressed teacher outputs: a later run reuses them
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "compress", "run", pipeline, "--runs-dir", str(runs), *overrides])
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        print(f"compress run failed with exit code {proc.returncode}", file=sys.stderr)
        return proc.returncode
    report = json.loads(RunLayout(runs / name).report_json.read_text())
    if report.get("task") == "causal-lm":
        return _causal_lm(pipeline, overrides, wall, name, report)
    keep = ("name", "format", "precision", "parameters", "size_bytes", "accuracy", "retention", "agreement_with_teacher",
            "speedup", "size_ratio", "latency_ms", "peak_memory_bytes")
    result = {
        "pipeline": pipeline,
        "overrides": overrides,
        "wall_seconds": round(wall, 1),
        "stage_seconds": report["stage_seconds"],
        "target": report["target"],
        "eval": report["eval"],
        "variants": [{k: v[k] for k in keep} for v in report["variants"]],
        "environment": report["environment"],
    }
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{name}: wall time {wall / 60:.1f} min")
    print(f"{'variant':<14}{'accuracy':>9}{'retention':>10}{'speedup':>9}{'size MB':>9}{'p50 ms':>8}{'peak MiB':>9}")
    for v in result["variants"]:
        print(f"{v['name']:<14}{v['accuracy']:>9.4f}{v['retention']:>10.1%}{v['speedup']:>8.2f}x"
              f"{v['size_bytes'] / 1e6:>9.1f}{v['latency_ms']['p50']:>8.2f}{v['peak_memory_bytes'] / 2**20:>9.0f}")
    print(f"wrote {out}")
    return 0


def _causal_lm(pipeline: str, overrides: list[str], wall: float, name: str, report: dict) -> int:
    """A causal-LM run: perplexity (and retention against the teacher), time to first token, tokens/s, memory."""
    keep = ("name", "format", "precision", "parameters", "size_bytes", "perplexity", "perplexity_retention",
            "perplexity_difference", "time_to_first_token_ms", "tokens_per_second", "peak_memory_bytes", "measurements")
    result = {
        "pipeline": pipeline, "task": "causal-lm", "overrides": overrides, "wall_seconds": round(wall, 1),
        "stage_seconds": report["stage_seconds"], "eval": report["eval"], "query": report["query"],
        "distillation_gain": report["distillation_gain"], "teacher": report["teacher"], "student": report["student"],
        "variants": [{k: v[k] for k in keep} for v in report["variants"]],
        "greedy_parity": {n: f"{sum(g['equal'] for g in gs)}/{len(gs)}" for n, gs in report["greedy_parity"].items()},
        "environment": report["environment"],
    }
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{name}: wall time {wall / 60:.1f} min")
    print(f"{'variant':<14}{'perplexity':>11}{'retention':>10}{'1st tok ms':>11}{'tokens/s':>10}{'size MB':>9}{'peak MiB':>9}")
    for v in result["variants"]:
        ttft = f"{v['time_to_first_token_ms']:.1f}" if v["time_to_first_token_ms"] is not None else "-"
        tps = f"{v['tokens_per_second']:.1f}" if v["tokens_per_second"] is not None else "-"
        peak = f"{v['peak_memory_bytes'] / 2**20:.0f}" if v["peak_memory_bytes"] else "-"
        print(f"{v['name']:<14}{v['perplexity']:>11.3f}{v['perplexity_retention']:>10.1%}{ttft:>11}{tps:>10}"
              f"{v['size_bytes'] / 1e6:>9.1f}{peak:>9}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
