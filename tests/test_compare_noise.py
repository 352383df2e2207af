"""`compress compare` tells noise from change: a latency regression only beyond the limit and both runs' spread
over rounds; a variant with the same model sha256 in both runs is unchanged, never a regression. Units on
hand-made reports; then (slow) the issue's acceptance on real tiny runs: a distill.temperature change exits 0 with
the byte-identical variants unchanged, a broken student still exits 1."""

from __future__ import annotations

import shutil

import pytest

from compress.records import Report
from compress.reports.compare import Latencies, changes, regressions, within_noise

from .conftest import ROOT, invoke, read_json


def report(**variants) -> Report:
    """A report of variants given as name=(sha256, accuracy, p50, (lo, hi) or None)."""
    rows = [{"name": name, "role": "student", "format": "onnx", "precision": "fp32", "parameters": 1, "size_bytes": 1,
             "sha256": sha, "accuracy": acc, "latency_ms": {"p50": p50}, "p50_range_ms": list(rng) if rng else None}
            for name, (sha, acc, p50, rng) in variants.items()]
    teacher = {"name": "teacher", "role": "teacher", "format": "pytorch", "precision": "fp32", "parameters": 1,
               "size_bytes": 1, "sha256": "t", "accuracy": 0.9, "latency_ms": {"p50": 10.0}, "p50_range_ms": [9, 11]}
    return Report.model_validate({"name": "r", "created": "c", "config_hash": "h", "reference": "teacher",
                                  "variants": [teacher, *rows]})


def test_a_latency_regresses_only_beyond_the_limit_and_both_spreads():
    assert Latencies(None, 1.0, 1.5, [0.95, 1.05], [1.45, 1.55]).regressed(10)  # +50%, spreads 0.1
    assert not Latencies(None, 1.0, 1.5, [0.5, 2.0], [1.45, 1.55]).regressed(10)  # the base's spread is 1.5
    assert not Latencies(None, 1.0, 1.5, [0.95, 1.05], [1.0, 2.1]).regressed(10)  # the new one's is 1.1
    assert not Latencies(None, 1.0, 1.05, [1.0, 1.0], [1.05, 1.05]).regressed(10)  # +5%: under the limit
    assert Latencies(None, 1.0, 1.5, None, None).regressed(10)  # a report.json from before rounds: the limit alone


def test_unchanged_variants_are_never_regressions_and_noise_is_said_so():
    base = report(**{"student": ("s1", 0.9, 1.0, (0.9, 1.1)), "student-ce": ("c1", 0.85, 1.0, (0.95, 1.05)),
                     "student-int8": ("q1", 0.9, 1.0, (0.99, 1.01))})
    new = report(**{"student": ("s2", 0.9, 1.3, (0.6, 2.5)),  # +30%, inside its spread: noise
                    "student-ce": ("c1", 0.5, 9.0, (8.0, 10.0)),  # the same file: unchanged, whatever it measured
                    "student-int8": ("q2", 0.8, 1.02, (1.01, 1.03))})  # the same speed, 10 points less accurate
    common, _, _ = changes(base, new)
    assert [c.name for c in common if c.unchanged] == ["teacher", "student-ce"]
    lines = regressions(common, max_retention_drop=0.5, max_latency_increase=10)
    assert len(lines) == 1 and lines[0].startswith("student-int8: retention fell 11.11 points")
    assert within_noise(common, 10) == ["student: p50 1.00 -> 1.30 ms (+30.0%), within the runs' spread over rounds "
                                        "(0.90-1.10 ms; 0.60-2.50 ms)"]
    missing = report(**{"student-ce": (None, 0.5, 9.0, None)})  # no sha256 recorded: compared as before
    assert not changes(missing, missing)[0][1].unchanged


# ----------------------------------------------------------------------------- the acceptance, on real runs

# a tiny run with its baselines (teacher, student-init and student-ce are the byte-identical ones), cpu only
# tiny.yaml's own training (a teacher that learns the generated task, so the int8 ladder passes), a short bench
RUN = ["bench.warmup=1", "bench.queries=10", "bench.min_seconds=0", "bench.targets=[cpu]", "bench.rounds=2"]


@pytest.mark.slow
def test_compare_on_runs_that_differ_only_in_temperature_and_on_a_broken_student(tmp_path):
    def run(runs: str, *overrides: str):
        result = invoke("run", ROOT / "pipelines" / "tiny.yaml", "--runs-dir", tmp_path / runs,
                        f"ship.dir={tmp_path / 'exports' / runs}", *RUN, *overrides)
        assert result.exit_code == 0, result.output + (result.stderr or "")
        return tmp_path / runs / "tiny"

    base = run("base")
    for name in ("warmer", "broken"):
        shutil.copytree(tmp_path / "base", tmp_path / name)
    warmer = run("warmer", "distill.temperature=2")  # distill reruns; teacher, student, baseline are skipped
    result = invoke("compare", base, warmer)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    line = next(x for x in result.stdout.splitlines() if x.startswith("unchanged "))
    same = line.split(": ", 1)[1].split(", ")
    assert {"teacher", "student-init", "student-ce"} <= set(same) and "student" not in same
    by = {v["name"]: v for v in read_json(warmer / "report.json")["variants"]}
    assert all(by[n]["sha256"] == v["sha256"] for n in same for v in read_json(base / "report.json")["variants"]
               if v["name"] == n)

    broken = run("broken", "distill.train.learning_rate=30")  # training diverges: the student is ruined
    result = invoke("compare", base, broken)
    assert result.exit_code == 1, result.output
    assert "regression: student: retention fell" in result.stderr
