"""The bench stage: targets (cpu, mobile, gpu), accuracy and retention intervals, latency in interleaved rounds
and its flags; units on hand-made data, then the shared tiny run's results.json, report.json and report.md, and a
copy of it with a noisy teacher: the flags in the terminal, report.md, report.html and the model card."""

from pathlib import Path

import numpy as np
import pytest

from compress.bench import rounds, targets
from compress.bench.accuracy import accuracy_interval, retention_interval
from compress.errors import ConfigError
from compress.tasks import load_config
from compress.tasks.classification.bench import Variant

from .conftest import ROOT, read_json

TINY = ROOT / "pipelines" / "tiny.yaml"


# ----------------------------------------------------------------------------- intervals


def test_accuracy_interval_contains_the_accuracy_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = (rng.random(200) < 0.8).astype(np.int8)
    large = (rng.random(5000) < 0.8).astype(np.int8)
    widths = []
    for correct in (small, large):
        lo, hi = accuracy_interval(correct)
        assert lo < correct.mean() < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3  # ~sqrt(25) = 5 times narrower
    assert accuracy_interval(small) == accuracy_interval(small)  # seeded: the same interval every time


def test_retention_interval_is_paired_and_contains_the_ratio():
    rng = np.random.default_rng(2)
    teacher = (rng.random(1000) < 0.9).astype(np.int8)
    assert retention_interval(teacher, teacher) == (1.0, 1.0)  # the same sentences every round: exactly 1
    student = teacher.copy()
    student[np.flatnonzero(teacher)[:45]] = 0  # 45 sentences lost: retention 0.95
    ratio = student.mean() / teacher.mean()
    lo, hi = retention_interval(student, teacher)
    assert lo < ratio < hi and hi < 1.0  # only losses: the whole interval is below 1
    unpaired = student[rng.permutation(len(student))]  # the same accuracy, losses spread at random
    ulo, uhi = retention_interval(unpaired, teacher)
    assert uhi - ulo > (hi - lo) * 1.5  # pairing removes the teacher's own sampling noise
    assert retention_interval(student, np.zeros_like(teacher)) is None


# ----------------------------------------------------------------------------- targets


def test_targets_config_defaults_and_refusals():
    assert load_config(TINY).bench.mobile_sequence_lengths == [16]  # the demo measures one mobile length
    cfg = load_config(TINY, ["bench.mobile_sequence_lengths=[16,32]"])
    assert cfg.bench.targets == ["cpu", "mobile"] and cfg.bench.mobile_sequence_lengths == [16, 32]
    cases = targets.cases(cfg.bench)
    assert [c.key for c in cases["mobile"]] == ["mobile@16", "mobile@32"]
    assert all(c.threads == 1 and c.batch_size == 1 for c in cases["mobile"])
    for overrides, expected in [
        (["bench.targets=[mobile]"], "bench.targets: must include cpu"),
        (["bench.targets=[cpu, phone]"], "bench.targets.1: must be one of"),
        (["bench.mobile_sequence_lengths=[1]"], "bench.mobile_sequence_lengths: each must be > 1"),
        (["bench.min_seconds=-1"], "bench.min_seconds: must be >= 0"),
        (["targets=[cpu, gpu]", "quantize.variants=[{name: q, method: fp16}]", "ship.variant=student-onnx"],
         "quantize.variants.0.method: fp16 runs on CUDA, but bench.targets is ['cpu', 'mobile']; add gpu"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(TINY, overrides)
        assert any(p.startswith(expected) for p in info.value.problems), (expected, info.value.problems)


def test_where_each_variant_runs(tmp_path):
    cfg = load_config(TINY, ["bench.targets=[cpu, mobile, gpu]"])
    cpu, mobile, gpu = (targets.cases(cfg.bench)[t][0] for t in ("cpu", "mobile", "gpu"))
    ort = tmp_path / "model.ort"
    ort.write_bytes(b"ort")
    shipped = Variant("student-int8", "student", "onnx", "int8", tmp_path / "q" / "model.onnx", "student-onnx")
    other = Variant("student-onnx", "student", "onnx", "fp32", tmp_path / "s" / "model.onnx", "student")
    torch_int8 = Variant("student-torch-int8", "student", "pytorch", "int8", tmp_path / "t", "student", loader="torch_int8")
    bnb = Variant("student-nf4", "student", "pytorch", "nf4", tmp_path / "b", "student", device="cuda", loader="bnb")
    on_mobile = targets.plan(shipped, mobile, ort, "student-int8")
    assert on_mobile.path == ort and on_mobile.threads == 1 and on_mobile.device == "cpu"
    assert targets.plan(other, mobile, ort, "student-int8").path == other.path  # not shipped: its own .onnx
    assert targets.plan(shipped, mobile, None, None).path == shipped.path  # mobile stage off: the .onnx
    assert "PyTorch" in targets.plan(torch_int8, mobile, ort, "student-int8")
    assert targets.plan(torch_int8, cpu, ort, "student-int8").threads == cfg.bench.threads
    assert "CPU only" in targets.plan(torch_int8, gpu, ort, "student-int8")
    assert "CUDA only" in targets.plan(bnb, cpu, ort, "student-int8")
    assert targets.plan(bnb, gpu, ort, "student-int8").device == "cuda"
    assert targets.home(bnb) == "gpu" and targets.home(shipped) == "cpu"


def test_gpu_target_is_skipped_with_the_reason_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert targets.unavailable("gpu") == "no CUDA: torch.cuda.is_available() is false on this machine"
    assert targets.unavailable("cpu") is None and targets.unavailable("mobile") is None


# ----------------------------------------------------------------------------- the shared tiny run


def test_results_have_every_target(tiny_shipped):
    import torch

    run_dir, _, overrides = tiny_shipped
    assert "bench.targets=[cpu,mobile,gpu]" in overrides
    results = read_json(run_dir / "bench" / "results.json")
    by_target = {t["name"]: t for t in results["targets"]}
    assert list(by_target) == ["cpu", "mobile", "gpu"]
    assert [c["key"] for c in by_target["mobile"]["cases"]] == ["mobile@16", "mobile@32"]
    if torch.cuda.is_available():
        assert by_target["gpu"]["status"] == "measured"
    else:
        assert by_target["gpu"]["status"] == "skipped" and by_target["gpu"]["reason"].startswith("no CUDA")
        assert not any(key.startswith("gpu@") for v in results["variants"] for key in v["measurements"])
    rows = {v["name"]: v for v in results["variants"]}
    for v in rows.values():
        lo, hi = v["accuracy_ci95"]
        assert lo <= v["accuracy"] <= hi
        assert v["measured_on"] == "cpu@32" and v["measurements"]["cpu@32"]["latency_ms"] == v["latency_ms"]
        assert v["measurements"]["cpu@32"]["queries"] >= 10
    onnx = [n for n, v in rows.items() if v["format"] == "onnx"]
    for name in onnx:  # every ONNX variant on one thread at batch 1, at each length; ONNX Runtime's arena stated
        for length in (16, 32):
            m = rows[name]["measurements"][f"mobile@{length}"]
            assert (m["threads"], m["batch_size"], m["sequence_length"]) == (1, 1, length)
            assert m["cpu_mem_arena"] == "enable_cpu_mem_arena=1" and m["runtime"] == "onnxruntime"
            assert m["model_file"] == "model.ort" if name == "student-int8" else m["model_file"].endswith(".onnx")
    for name in set(rows) - set(onnx):  # PyTorch variants: not on mobile, with the reason; no arena
        assert not any(k.startswith("mobile@") for k in rows[name]["measurements"])
        assert "PyTorch" in by_target["mobile"]["not_run"][name]
        assert rows[name]["cpu_mem_arena"] is None


def test_interleaved_rounds_and_per_target_report(tiny_shipped):
    run_dir, _, _ = tiny_shipped
    results = read_json(run_dir / "bench" / "results.json")
    how = results["latency_rounds"]
    assert how["rounds"] == 2 and how["noise_tolerance"] == 0.25 and how["timer"]["floor_ms"] >= rounds.FLOOR_MS
    assert set(how["machine"]) == {"before", "after"}
    assert all(s["governor"] and len(s["load_average"]) == 3 for s in how["machine"].values())
    for v in results["variants"]:
        assert len(v["sha256"]) == 64
        for m in v["measurements"].values():  # every measurement in every round, combined from them
            p50s = m["p50_rounds_ms"]
            assert m["rounds"] == 2 and len(p50s) == 2 and m["p50_range_ms"] == [min(p50s), max(p50s)]
            assert m["latency_ms"]["p50"] == pytest.approx(sum(p50s) / 2, abs=1e-3)  # the median of two
            assert m["flags"] == rounds.flags(p50s, 0.25, how["timer"]["floor_ms"])
            assert m["queries"] >= 2 * 10  # bench.queries in each round

    report = read_json(run_dir / "report.json")
    assert report["latency_rounds"] == how and "repeatability" not in report
    by = {v["name"]: v for v in report["variants"]}
    teacher_flags = by["teacher"]["measurements"]["cpu@32"].get("flags", [])
    for v in by.values():
        lo, hi = v["retention_ci95"]
        assert lo <= v["retention"] <= hi
        assert v["sha256"] == next(r["sha256"] for r in results["variants"] if r["name"] == v["name"])
        if v["name"] != "teacher":  # a speedup carries its reference's flags
            want = v.get("flags", []) + [f"reference {f}" for f in teacher_flags]
            assert v.get("speedup_flags", []) == want
            assert len(v["speedup_range"]) == 2
    assert by["teacher"]["retention_ci95"] == [1.0, 1.0] and by["teacher"].get("speedup_flags", []) == teacher_flags
    mobile = next(t for t in report["targets"] if t["name"] == "mobile")
    for case in mobile["cases"]:
        assert case["reference"] == "teacher-onnx"  # the teacher in PyTorch does not run there
        rec = case["recommended"]
        assert rec["name"] in by and by[rec["name"]]["retention"] >= report["recommended"]["retention_floor"]
        assert by["teacher-onnx"]["measurements"][case["key"]]["speedup"] == 1.0
    md = (run_dir / "report.md").read_text()
    assert "## Latency per target" in md and "### mobile" in md and "### gpu" in md
    assert "## How latency was measured" in md and "2 interleaved rounds" in md and "CPU frequency governor" in md
    assert "| student-int8 | 16 | onnxruntime | `model.ort` |" in md
    assert "Recommended for mobile, sequence length 32: " in md
    assert "enable_cpu_mem_arena=1" in md
    page = (run_dir / "report.html").read_text()
    cases = [c for t in report["targets"] for c in t["cases"]]
    assert page.count("<svg") == 1 + len(cases)  # size, and latency on each target case
    assert "Accuracy against p50 latency\ntiny on mobile, batch 1, sequence length 16" in page  # the plot's title
    card = (Path(read_json(run_dir / "ship" / "stage.json")["metrics"]["bundle"]) / "README.md").read_text()
    assert "one thread, batch 1 (the bench's mobile target, `model.ort`)" in card


def test_a_noisy_reference_is_flagged_in_all_four_places(tiny_shipped, tmp_path):
    """A teacher like the issue's (p50 1.89 then 460.74 ms in the run's two rounds) put into a copy of the shared
    run's bench results: the report and the bundle made again from them flag it, and every speedup against it."""
    import json
    import shutil

    from compress.io import sha256_file

    from .conftest import invoke

    run_dir, _, overrides = tiny_shipped
    shutil.copytree(run_dir.parent, tmp_path / "runs")
    copy = tmp_path / "runs" / "tiny"
    path = copy / "bench" / "results.json"
    results = read_json(path)
    teacher = next(v for v in results["variants"] if v["name"] == "teacher")
    noisy = {"p50_rounds_ms": [1.89, 460.74], "p50_range_ms": [1.89, 460.74], "relative_spread": 1.9836,
             "flags": ["noisy"], "latency_ms": {**teacher["latency_ms"], "p50": 231.32}}
    teacher.update(noisy)
    teacher["measurements"]["cpu@32"].update(noisy)
    path.write_text(json.dumps(results))
    record = read_json(copy / "bench" / "stage.json")  # what the bench stage wrote, as a later run checks it
    record["files"]["results.json"] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    (copy / "bench" / "stage.json").write_text(json.dumps(record))
    (copy / "report.json").unlink()  # the report and the bundle are made again

    kept = [o for o in overrides if not o.startswith("ship.dir=")]
    result = invoke("run", TINY, "--runs-dir", tmp_path / "runs", f"ship.dir={tmp_path / 'exports'}", *kept)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    assert {line.split()[1] for line in result.output.splitlines() if line.startswith("done ")} == {"report", "ship"}
    # the terminal: "!" on every speedup resting on the teacher, and the lines saying why
    assert "! teacher: noisy: p50 1.89-460.74 ms over 2 rounds, 198% of the median apart (tolerance 25%)" \
        in result.output
    report = read_json(copy / "report.json")
    shipped = next(v for v in report["variants"] if v["name"] == "student-int8")
    assert all("reference noisy" in v["speedup_flags"] for v in report["variants"] if v["name"] != "teacher")
    assert "! every speedup against teacher rests on a noisy reference: read each with its interval" in result.output
    lo, hi = shipped["speedup_range"]
    assert f"{shipped['speedup']:.2f}x ({lo:.2f}-{hi:.2f})!" in result.output  # its cell in the table
    written = f"{shipped['speedup']:.2f}x ({lo:.2f}-{hi:.2f}) ["
    # report.md and report.html: the teacher's p50 and every speedup against it carry the flag
    md = (copy / "report.md").read_text()
    assert "| 231.32 [noisy] |" in md and md.count("noisy reference]") >= 2 and written in md
    assert "- teacher: noisy: p50 1.89-460.74 ms over 2 rounds" in md
    page = (copy / "report.html").read_text()
    # in a table cell the flag and the interval sit on lines of their own (compress.reports.html._flag_span)
    cell = f'{shipped["speedup"]:.2f}x<span class="range">({lo:.2f}-{hi:.2f})</span><span class="flag">['
    assert '231.32<span class="flag">[noisy]</span>' in page and cell in page and "noisy reference" in page
    # the model card: the speedup with its interval and flag, and the line saying why
    card = (tmp_path / "exports" / "tiny" / "README.md").read_text()
    assert f"- {shipped['speedup']:.2f}x the teacher's speed (PyTorch fp32; {lo:.2f}-{hi:.2f}x in 2 rounds) [" in card
    assert "noisy reference], p50 " in card
    assert "flagged, do not quote this speedup without its flag: teacher: noisy: p50 1.89-460.74 ms" in card
    assert "the speedup of student-int8 rests on a noisy reference" in card
    manifest = read_json(tmp_path / "exports" / "tiny" / "manifest.json")
    assert "reference noisy" in manifest["metrics"]["speedup_flags"]
