"""The real CLI on pipelines/tiny.yaml: a whole run, a rerun that skips, an override that reruns."""

import json
import os
import subprocess
import sys

import yaml

from .conftest import ROOT, read_json

VARIANTS = ["teacher", "teacher-onnx", "student", "student-onnx", "student-int8", "student-int8-static", "student-torch-int8", "student-init", "student-ce"]
# tiny.yaml's quantized variants and a PyTorch int8 one (the demo leaves it out to stay under a minute): every
# method that runs on a CPU goes through the whole loop
_TINY_VARIANTS = yaml.safe_load((ROOT / "pipelines" / "tiny.yaml").read_text())["quantize"]["variants"]
WITH_TORCH_INT8 = "quantize.variants=" + json.dumps([*_TINY_VARIANTS, {"name": "student-torch-int8", "method": "torch_dynamic"}])
STAGES = ("teacher", "student", "distill", "refine", "baseline", "trim", "export", "quantize", "mobile", "bench", "report",
          "ship")
FIELDS = ["format", "precision", "parameters", "size_bytes", "accuracy", "retention", "speedup", "latency_ms",
          "peak_memory_bytes"]


def test_help_and_version_are_instant_and_light():
    code = ("import sys; from typer.testing import CliRunner; from compress.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "assert 'run' in r.output and 'validate' in r.output; "
            "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'optimum') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    out = subprocess.run([sys.executable, "-m", "compress", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("compress 0.")


def test_console_script_is_ours():
    exe = os.path.join(os.path.dirname(sys.executable), "compress")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("compress 0.")


def test_tiny_run_end_to_end_then_skip_then_rerun_from_distill(run_tiny, tmp_path):
    result, run_dir = run_tiny(WITH_TORCH_INT8)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    report = read_json(run_dir / "report.json")
    names = [v["name"] for v in report["variants"]]
    assert names == VARIANTS
    for v in report["variants"]:
        for field in FIELDS:
            assert v[field] is not None, (v["name"], field)
        assert set(v["latency_ms"]) >= {"p50", "p90", "p99"}
        percentiles = [v["latency_ms"][q] for q in ("p50", "p90", "p99")]
        assert percentiles == sorted(percentiles)  # an ordering check on the statistics, not a speed target
        assert v["peak_memory_bytes"] > 10 * 2**20
    by = {v["name"]: v for v in report["variants"]}
    assert by["teacher"]["retention"] == 1.0 and by["teacher"]["speedup"] == 1.0
    assert by["teacher"]["accuracy"] > 0.85  # the generated task is learnable from its noisy labels: the loop trains
    # the demo's point, from real training: the distilled student beats the same student trained on the noisy
    # labels alone (same data, steps and rate), by more than the paired interval's width around zero
    gain = report["distillation_gain"]["student vs student-ce"]
    assert by["student"]["accuracy"] > by["student-ce"]["accuracy"] and gain["ci95"][0] > 0, gain
    for name in ("student-int8", "student-int8-static", "student-torch-int8"):  # shipped and int8: also at batch 1
        assert 0 < by[name]["accuracy_batch1"] <= 1 and by[name]["retention_batch1"] is not None
    assert "accuracy_batch1" not in by["student-onnx"] and "## Accuracy as deployed" in (run_dir / "report.md").read_text()
    assert by["student"]["parameters"] < by["teacher"]["parameters"]
    assert by["student-int8"]["size_bytes"] < by["student-onnx"]["size_bytes"]
    # ONNX variants are measured without torch in the process: far less memory than a torch process
    assert by["student-int8"]["peak_memory_bytes"] < by["student"]["peak_memory_bytes"]
    md = (run_dir / "report.md").read_text()
    assert md.count("| student-int8 | onnx | int8 |") == 1 and "## Quantization" in md
    quantized = {v["name"]: v for v in report["quantize"]["variants"]}
    assert set(quantized) == {"student-int8", "student-int8-static", "student-torch-int8"}
    for v in quantized.values():  # every quantized variant carries its parity checklist, at every saved shape
        assert v["status"] == "produced" and len(v["parity"]) == 4 and all(r["ok"] for r in v["parity"])
        assert abs(v["drop_points"]) <= v["budget"]
    assert quantized["student-int8-static"]["calibration"]["samples"] == 32
    assert len(quantized["student-int8-static"]["calibration"]["sha256"]) == 64
    assert (run_dir / "config.yaml").is_file() and (run_dir / "env.json").is_file()
    assert set(report["distillation_gain"]) == {"student vs student-ce", "student vs student-init"}
    lo, hi = report["distillation_gain"]["student vs student-ce"]["ci95"]
    assert lo <= report["distillation_gain"]["student vs student-ce"]["difference"] <= hi
    for stage in STAGES:
        assert read_json(run_dir / stage / "stage.json")["status"] == "done"
    manifest = read_json(tmp_path / "exports" / "tiny" / "manifest.json")
    assert {"model.onnx", "model.ort", "golden.json", "tokenizer.json", "README.md"} <= set(manifest["files"])
    assert [i["name"] for i in manifest["inputs"]][:2] == ["input_ids", "attention_mask"]
    assert "report:" in result.output

    stamps = {s: read_json(run_dir / s / "stage.json")["finished"] for s in ("teacher", "distill", "bench")}
    again, _ = run_tiny(WITH_TORCH_INT8)
    assert again.exit_code == 0, again.output
    assert again.output.count("skip ") == len(STAGES)
    assert {s: read_json(run_dir / s / "stage.json")["finished"] for s in stamps} == stamps

    changed, _ = run_tiny(WITH_TORCH_INT8, "distill.temperature=2")
    assert changed.exit_code == 0, changed.output
    skipped = {line.split()[1] for line in changed.output.splitlines() if line.startswith("skip ")}
    assert skipped == {"teacher", "student", "baseline"}
    assert read_json(run_dir / "teacher" / "stage.json")["finished"] == stamps["teacher"]
    assert read_json(run_dir / "distill" / "stage.json")["metrics"]["temperature"] == 2.0
    assert read_json(run_dir / "report.json")["distill"]["temperature"] == 2.0


def test_bad_config_writes_nothing(run_tiny, tmp_path):
    result, run_dir = run_tiny("distill.temperature=-1")
    assert result.exit_code == 2
    assert "distill.temperature: must be > 0, got -1" in result.stderr
    assert "Traceback" not in result.output
    assert not run_dir.exists()


def test_tiny_distilbert_student_jsd_vocab_trim_and_transfer_set(run_tiny):
    result, run_dir = run_tiny("student.architecture=distilbert", "distill.divergence=jsd", "vocab_trim.enabled=true",
                               "baselines.enabled=false", WITH_TORCH_INT8, "quantize.variants.0.per_channel=false",
                               "distill.augment.copies=1")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    train = read_json(run_dir / "distill" / "stage.json")["metrics"]["train"]
    rows = train["sentences"] / train["epochs"]
    assert 2000 < rows <= 4000  # 2,000 training rows and up to one perturbed copy of each, per epoch
    report = read_json(run_dir / "report.json")
    assert report["student"]["architecture"] == "distilbert"
    assert report["vocab_trim"]["enabled"] and report["vocab_trim"]["max_abs_diff"] <= 1e-5
    assert [v["name"] for v in report["variants"]] == VARIANTS[:7]
    assert report["distillation_gain"] == {}


def test_tiny_narrow_student_with_hidden_state_and_attention_loss(run_tiny):
    result, run_dir = run_tiny("student.method=config", "student.layers=null", "student.num_layers=2",
                               "student.hidden_size=16", "distill.hidden.weight=1.0", "distill.attention_weight=1.0")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    metrics = read_json(run_dir / "distill" / "stage.json")["metrics"]
    assert metrics["hidden"]["projection"] is True  # widths 16 vs 32: bridged by a learned projection
    assert "cache" not in metrics  # hidden-state losses need the live teacher
    assert read_json(run_dir / "report.json")["student"]["width"] == 16


def test_tiny_pruned_student_exports_with_fused_attention(run_tiny):
    """Heads and feed-forward neurons pruned from the teacher's layers: the student distils, exports, fuses and ships."""
    result, run_dir = run_tiny("student.num_attention_heads=1", "student.intermediate_size=32", "baselines.enabled=false",
                               "quantize.variants=[{name: student-int8, method: onnx_dynamic}]", "bench.targets=[cpu]")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    student = read_json(run_dir / "student" / "stage.json")["metrics"]
    assert student["pruned_heads"]["heads"] == 1 and student["pruned"]["intermediate_size"] == 32
    assert "attention heads pruned 2 -> 1 per block" in result.output
    fusions = read_json(run_dir / "export" / "stage.json")["metrics"]["student"]["fusions"]
    assert fusions["Attention"] == 2 and fusions["Gelu"] == 2  # both blocks still fuse with half the heads
    assert fusions["Sum"] == 4 and fusions["SkipLayerNormalization"] == 0  # the 2 residual adds of each block


def test_tiny_refine_prunes_the_distilled_student_and_distils_it_again(run_tiny):
    """refine: the distilled student loses heads and neurons, is taught again (by itself before pruning, then by the
    teacher), and the refined student is what is exported, quantized and reported, beside the unpruned one."""
    fast = ("baselines.enabled=false", "quantize.variants=[{name: student-int8, method: onnx_dynamic}]",
            "bench.targets=[cpu]", "mobile.enabled=false", "ship.enabled=false")
    refine = ("refine.enabled=true", "refine.num_attention_heads=1", "refine.intermediate_size=16")
    result, run_dir = run_tiny(*fast, *refine)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    metrics = read_json(run_dir / "refine" / "stage.json")["metrics"]
    assert metrics["pruned_heads"]["heads"] == 1 and metrics["pruned"]["intermediate_size"] == 16
    assert metrics["parameters"] < metrics["parameters_before"] and metrics["taught_by"] == "student"
    assert metrics["cache"]["hit"] is False  # the distilled student's outputs: a new cache entry
    assert metrics["train"]["steps"] > 0
    assert "refine: the distilled student, attention heads pruned 2 -> 1 per block" in result.output.replace("\n", " ")
    distilled = read_json(run_dir / "distill" / "model" / "config.json")
    shipped = read_json(run_dir / "refine" / "model" / "config.json")
    assert distilled["intermediate_size"] == 64 and shipped["intermediate_size"] == 16
    assert read_json(run_dir / "export" / "stage.json")["metrics"]["student"]["fusions"]["Attention"] == 2
    report = read_json(run_dir / "report.json")
    by = {v["name"]: v for v in report["variants"]}
    assert by["student-unpruned"]["role"] == "baseline"
    assert by["student"]["parameters"] == metrics["parameters"]  # what is benchmarked is the refined student
    assert by["student-unpruned"]["parameters"] == metrics["parameters_before"]
    change = report["refine"]["student vs student-unpruned"]
    assert change["ci95"][0] <= change["difference"] <= change["ci95"][1]
    assert report["refine"]["intermediate_size"] == [64, 16]
    assert "Refined: the distilled student pruned (num_attention_heads 2 -> 1, intermediate_size 64 -> 16" in (
        run_dir / "report.md").read_text()

    assert (metrics["alpha"], metrics["temperature"]) == (0.2, 4.0)  # distill's (pipelines/tiny.yaml)

    again, _ = run_tiny(*fast, *refine, "refine.teacher=teacher", "refine.alpha=0.0", "refine.temperature=1.0")
    assert again.exit_code == 0, again.output + (again.stderr or "")
    skipped = {line.split()[1] for line in again.output.splitlines() if line.startswith("skip ")}
    assert {"teacher", "student", "distill", "baseline"} <= skipped and "refine" not in skipped
    metrics = read_json(run_dir / "refine" / "stage.json")["metrics"]
    assert metrics["taught_by"] == "teacher" and metrics["cache"]["hit"] is True  # the distill stage's entry
    assert (metrics["alpha"], metrics["temperature"]) == (0.0, 1.0) and "refine: forward_kl T=1.0, alpha=0.0" in again.output
    distilled = read_json(run_dir / "distill" / "stage.json")["metrics"]
    assert (distilled["alpha"], distilled["temperature"]) == (0.2, 4.0)  # the first round's, untouched

    # refine.hidden: only the second round pulls hidden states, block by block towards the unpruned student
    hidden, _ = run_tiny(*fast, *refine, "refine.hidden.weight=1.0")
    assert hidden.exit_code == 0, hidden.output + (hidden.stderr or "")
    assert "skip distill" in hidden.output and "live teacher, hidden mse x1.0" in hidden.output
    metrics = read_json(run_dir / "refine" / "stage.json")["metrics"]
    layers = read_json(run_dir / "refine" / "model" / "config.json")["num_hidden_layers"]
    assert metrics["hidden"] == {"layer_map": [[i, i] for i in range(layers + 1)], "projection": False}
    assert "cache" not in metrics and "hidden" not in read_json(run_dir / "distill" / "stage.json")["metrics"]


def test_plan_reruns_what_reads_a_deleted_stage(tmp_path):
    import shutil

    from compress import records
    from compress.pipeline import plan
    from compress.tasks import load_config

    cfg = load_config(ROOT / "pipelines" / "tiny.yaml", ["ship.enabled=false"])
    run_dir = tmp_path / "tiny"
    for stage, h, _ in plan(cfg, run_dir):  # pretend every stage finished
        (run_dir / stage.NAME).mkdir(parents=True)
        records.write(run_dir / stage.NAME / "stage.json", records.StageRecord(
            stage=stage.NAME, status="done", inputs_hash=h, started="2025-01-01T00:00:00+00:00",
            finished="2025-01-01T00:00:01+00:00", seconds=1.0))  # a whole record: times included
    (run_dir / "report.json").write_text("{}")
    (run_dir / "report.md").write_text("")
    (run_dir / "report.html").write_text("")
    assert [s.NAME for s, _, r in plan(cfg, run_dir) if r] == []
    shutil.rmtree(run_dir / "distill")
    rerun = [s.NAME for s, _, r in plan(cfg, run_dir) if r]
    assert rerun == ["distill", "refine", "trim", "export", "quantize", "mobile", "bench", "report", "ship"]
