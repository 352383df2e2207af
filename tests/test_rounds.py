"""Latency in interleaved rounds (compress.bench.rounds): the statistics, the noisy and below-resolution flags,
speedup intervals and how flags travel to them, on synthetic timings (nothing is timed here); the machine's state;
bench.rounds and bench.noise_tolerance in the config."""

from __future__ import annotations

import pytest

from compress.bench import rounds
from compress.errors import ConfigError
from compress.records import Report
from compress.tasks import load_config
from compress.tasks.causal_lm.bench import combine_generation
from compress.tasks.classification.bench import combine_case
from compress.tasks.classification.summary import speedup_cell

from .conftest import ROOT


def lat(p50: float, **more) -> dict:
    return {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5, "mean": p50 * 1.1, **more}


def test_a_p50_is_the_median_of_the_rounds_and_its_spread_their_range():
    m = rounds.combine([lat(2.0), lat(1.0), lat(1.2)], tolerance=0.25, floor_ms=0.05)
    assert m["latency_ms"]["p50"] == 1.2 and m["latency_ms"]["p99"] == pytest.approx(1.8)
    assert m["rounds"] == 3 and m["p50_rounds_ms"] == [2.0, 1.0, 1.2] and m["p50_range_ms"] == [1.0, 2.0]
    assert m["relative_spread"] == pytest.approx((2.0 - 1.0) / 1.2, abs=1e-4)
    assert m["flags"] == ["noisy"]  # 0.83 of the median apart, over 0.25


def test_noisy_is_judged_against_the_tolerance():
    steady = [lat(1.00), lat(1.10), lat(1.05)]  # (1.10 - 1.00) / 1.05 = 0.095
    assert rounds.combine(steady, tolerance=0.25, floor_ms=0.05)["flags"] == []
    assert rounds.combine(steady, tolerance=0.05, floor_ms=0.05)["flags"] == ["noisy"]
    # the teacher: 1.89, 7.89 and 460.74 ms
    assert rounds.combine([lat(1.89), lat(7.89), lat(460.74)], 0.25, 0.05)["flags"] == ["noisy"]


def test_timings_under_the_floor_are_flagged_below_resolution():
    fast = [lat(0.031), lat(0.030), lat(0.032)]
    assert rounds.combine(fast, tolerance=0.25, floor_ms=0.05)["flags"] == ["below-resolution"]
    assert rounds.combine(fast, tolerance=0.25, floor_ms=0.02)["flags"] == []
    both = rounds.combine([lat(0.01), lat(0.04), lat(0.02)], 0.25, 0.05)["flags"]
    assert both == ["noisy", "below-resolution"]


def test_a_speedup_has_its_interval_over_rounds_and_the_flags_of_both_sides():
    teacher = rounds.combine([lat(10.0), lat(12.0), lat(11.0)], 0.25, 0.05)
    student = rounds.combine([lat(1.0), lat(1.5), lat(1.1)], 0.25, 0.05)
    s = rounds.speedup(teacher, student)
    assert s["speedup"] == pytest.approx(11.0 / 1.1, abs=1e-3)
    assert s["speedup_range"] == [8.0, 10.0]  # per round: 10/1, 12/1.5, 11/1.1
    assert s["speedup_flags"] == ["noisy"]  # the student's own rounds: (1.5 - 1.0) / 1.1 > 0.25
    noisy_teacher = rounds.combine([lat(1.89), lat(7.89), lat(460.74)], 0.25, 0.05)
    steady = rounds.combine([lat(1.0), lat(1.0), lat(1.1)], 0.25, 0.05)
    s = rounds.speedup(noisy_teacher, steady)
    assert s["speedup_flags"] == ["reference noisy"] and s["speedup_range"] == [1.89, pytest.approx(418.855, abs=1e-3)]
    assert rounds.speedup(noisy_teacher, noisy_teacher, same=True) == {
        "speedup": 1.0, "speedup_range": None, "speedup_flags": ["noisy"]}  # 1x by definition; its own flag, once
    old = {"latency_ms": {"p50": 2.0}}  # a measurement from before rounds: no interval, no flags
    assert rounds.speedup(old, {"latency_ms": {"p50": 1.0}}) == {"speedup": 2.0, "speedup_range": None,
                                                                  "speedup_flags": []}


def test_a_flagged_speedup_is_never_written_without_its_flag():
    assert rounds.speedup_text(7187.39, [0.01, 7199.0], ["reference noisy"]) == "7187.39x (0.01-7199.00) [noisy reference]"
    assert rounds.speedup_text(2.31, [2.1, 2.52], []) == "2.31x (2.10-2.52)"
    assert rounds.speedup_text(1.0, None, ["below-resolution", "reference below-resolution"]) == \
        "1.00x [below timer resolution, reference below timer resolution]"
    assert rounds.p50_text(460.74, ["noisy"]) == "460.74 [noisy]" and rounds.p50_text(1.0, []) == "1.00"


def _report(teacher_flags=(), student_flags=()) -> Report:
    def variant(name, p50, flags, speedup, speedup_flags):
        return {"name": name, "role": "student", "format": "onnx", "precision": "fp32", "parameters": 1,
                "size_bytes": 1, "latency_ms": {"p50": p50}, "speedup": speedup, "speedup_range": [0.01, 7199.0],
                "flags": list(flags), "speedup_flags": list(speedup_flags), "p50_rounds_ms": [1.89, 7.89, 460.74],
                "p50_range_ms": [1.89, 460.74], "relative_spread": 58.16}

    return Report.model_validate({
        "name": "t", "created": "c", "config_hash": "h", "reference": "teacher",
        "latency_rounds": {"rounds": 3, "noise_tolerance": 0.25},
        "variants": [variant("teacher", 7.89, teacher_flags, 1.0, teacher_flags),
                     variant("student-int8", 0.001, student_flags, 7187.39,
                             [*student_flags, *(f"reference {f}" for f in teacher_flags)])]})


def test_flagged_lines_name_each_flagged_figure_and_why():
    report = _report(teacher_flags=["noisy"])
    assert rounds.flagged_lines(report.variants, 0.25) == [
        "teacher: noisy: p50 1.89-460.74 ms over 3 rounds, 5816% of the median apart (tolerance 25%)",
        "the speedup of student-int8 rests on a noisy reference: read each with its interval",
    ]
    assert rounds.flagged_lines(_report().variants, 0.25) == []
    both = _report(teacher_flags=["noisy"], student_flags=["below-resolution"]).variants
    assert rounds.flagged_lines(both) == [
        "teacher: noisy: p50 1.89-460.74 ms over 3 rounds, 5816% of the median apart",
        "student-int8: below timer resolution: p50 0.001 ms per query, under the timer's floor",
        "the speedup of student-int8 rests on a noisy reference: read each with its interval"]
    # the terminal's speedup cell: the interval, and "!" pointing at the lines under the table
    assert [speedup_cell(v) for v in report.variants] == ["1.00x (0.01-7199.00)!", "7187.39x (0.01-7199.00)!"]
    assert speedup_cell(_report().variants[1]) == "7187.39x (0.01-7199.00)"


def test_a_measurement_from_its_rounds():
    def once(p50, rss, load):
        return {"runtime": "onnxruntime", "threads": 2, "batch_size": 1, "sequence_length": 32, "warmup": 5,
                "device": "cpu", "model_file": "model.onnx", "cpu_mem_arena": None, "load_seconds": load,
                "timed_seconds": 0.5, "peak_rss_bytes": rss, "queries": 20, "throughput": 1000 / p50,
                "latency_ms": lat(p50)}

    m = combine_case([once(1.0, 100, 0.3), once(1.1, 120, 0.1), once(0.9, 90, 0.2)], tolerance=0.25, floor_ms=0.05)
    assert m["latency_ms"]["p50"] == 1.0 and m["p50_range_ms"] == [0.9, 1.1] and m["flags"] == []
    assert m["peak_rss_bytes"] == 120 and m["load_seconds"] == 0.2 and m["queries"] == 60 and m["timed_seconds"] == 1.5


def test_generation_speed_from_its_rounds_is_flagged_when_tokens_per_second_disagree():
    def once(ttft, rate):
        return {"runtime": "onnxruntime", "threads": 2, "prompt_tokens": 32, "new_tokens": 8, "warmup": 1, "runs": 3,
                "load_seconds": 0.1, "time_to_first_token_ms": {"p50": ttft, "p90": ttft * 1.1, "min": ttft * 0.9},
                "tokens_per_second": rate, "generation_ms": ttft * 8, "peak_rss_bytes": 10}

    steady = combine_generation([once(10, 100), once(10.5, 104), once(10.2, 98)], 0.25, 0.05)
    assert steady["time_to_first_token_ms"]["p50"] == 10.2 and steady["tokens_per_second"] == 100
    assert steady["flags"] == [] and steady["tokens_per_second_rounds"] == [100, 104, 98]
    rates = combine_generation([once(10, 100), once(10.5, 40), once(10.2, 98)], 0.25, 0.05)
    assert rates["flags"] == ["noisy"]  # the first token agrees, tokens/s does not


def test_governor_reads_every_core_and_says_unknown_without_cpufreq(tmp_path):
    assert rounds.governor(tmp_path) == "unknown"
    for i, g in enumerate(["performance", "performance", "powersave"]):
        (tmp_path / f"cpu{i}" / "cpufreq").mkdir(parents=True)
        (tmp_path / f"cpu{i}" / "cpufreq" / "scaling_governor").write_text(g + "\n")
    assert rounds.governor(tmp_path) == "performance, powersave"
    state = rounds.machine()
    assert set(state) == {"load_average", "governor", "cpus"} and len(state["load_average"]) == 3
    clock = rounds.timer()
    assert clock["clock"] == "time.perf_counter" and clock["floor_ms"] >= rounds.FLOOR_MS


def test_rounds_and_noise_tolerance_are_validated():
    cfg = load_config(ROOT / "pipelines" / "tiny.yaml")
    assert cfg.bench.rounds >= 2 and cfg.bench.noise_tolerance == 0.25
    for overrides, expected in [(["bench.rounds=1"], "bench.rounds: must be >= 2"),
                                (["bench.noise_tolerance=0"], "bench.noise_tolerance: must be > 0")]:
        with pytest.raises(ConfigError) as info:
            load_config(ROOT / "pipelines" / "tiny.yaml", overrides)
        assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_speedups_resting_on_a_flagged_reference_are_named_in_one_line():
    variants = _report(teacher_flags=["noisy"]).variants
    assert rounds.flagged_lines(variants, reference="teacher")[-1] == \
        "the speedup of student-int8 rests on a noisy reference: read each with its interval"  # one of one
    three = Report.model_validate({**_report(teacher_flags=["noisy"]).dump(), "variants": [
        *(v.dump() for v in variants), {**variants[1].dump(), "name": "student-onnx"}]})
    assert rounds.flagged_lines(three.variants, reference="teacher")[-1] == \
        "every speedup against teacher rests on a noisy reference: read each with its interval"
    assert rounds.flagged_lines(three.variants[:2] + three.variants[2:], reference=None)[-1] == \
        "the speedups of student-int8, student-onnx rest on a noisy reference: read each with its interval"
