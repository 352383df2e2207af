"""A cut-down distilbert.yaml on real data: MiniLM fine-tuned on 4,000 SST-2 sentences,
distilled into 3 layers, pruned and distilled again, exported, quantized, benchmarked on all 872 test sentences."""

import pytest

from .conftest import ROOT, SHARED_DATA, invoke, read_json

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not (SHARED_DATA / "sst2" / "train.tsv").is_file(), reason="../shared/data/sst2 is not beside the repo")
def test_cut_down_sst2_pipeline(tmp_path):
    result = invoke(
        "run", ROOT / "pipelines" / "distilbert.yaml", "--runs-dir", tmp_path / "runs",
        f"data.source={SHARED_DATA / 'sst2'}", "data.max_train_samples=4000", "name=sst2-ci",
        "bench.queries=20", "bench.warmup=3", f"ship.dir={tmp_path / 'exports'}",
    )
    assert result.exit_code == 0, result.output + (result.stderr or "")
    report = read_json(tmp_path / "runs" / "sst2-ci" / "report.json")
    by = {v["name"]: v for v in report["variants"]}
    assert report["eval"]["sentences"] == 872
    # 4,000 sentences (a fifteenth of the full recipe) already make a real classifier of MiniLM
    assert by["teacher"]["accuracy"] >= 0.80, by["teacher"]
    assert by["teacher-onnx"]["accuracy"] == pytest.approx(by["teacher"]["accuracy"], abs=0.003)
    assert by["student"]["retention"] >= 0.90, by["student"]
    assert by["student-int8"]["accuracy"] >= by["student"]["accuracy"] - 0.02
    assert by["student"]["parameters"] < 0.85 * by["teacher"]["parameters"]
    assert by["student-int8"]["size_bytes"] < 0.5 * by["student-onnx"]["size_bytes"]
    assert (tmp_path / "exports" / "sst2-ci" / "model.onnx").is_file()
    # baselines beside the distilled student, and the vocabulary trimmed with identical logits
    assert by["student-init"]["accuracy"] < by["student"]["accuracy"]
    assert by["student-ce"]["accuracy"] >= 0.75
    gain = report["distillation_gain"]["student vs student-ce"]
    assert gain["ci95"][0] <= gain["difference"] <= gain["ci95"][1]
    trim = report["vocab_trim"]
    assert trim["vocab_after"] < 0.6 * trim["vocab_before"] and trim["max_abs_diff"] <= 1e-5
    assert by["student"]["size_bytes"] < by["student-ce"]["size_bytes"]
    # refine: the distilled student pruned to 6 heads and 768 neurons per block, distilled again
    assert report["refine"]["num_attention_heads"] == [12, 6] and report["refine"]["intermediate_size"] == [1536, 768]
    assert by["student"]["parameters"] < by["student-unpruned"]["parameters"]
    change = report["refine"]["student vs student-unpruned"]
    assert change["ci95"][0] <= change["difference"] <= change["ci95"][1]


@pytest.mark.skipif(not (SHARED_DATA / "sst2" / "train.tsv").is_file(), reason="../shared/data/sst2 is not beside the repo")
def test_train_step_benchmark_runs_each_setting_through_the_training_loop(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_step", ROOT / "benchmarks" / "train_step.py")
    train_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_step)
    out = tmp_path / "train_step.json"
    assert train_step.main(["--sentences", "160", "--repeats", "1", "--data", str(SHARED_DATA / "sst2"),
                            "--out", str(out)]) == 0
    r = read_json(out)
    s = r["settings"]
    assert set(s) == set(train_step.SETTINGS) and r["steps"] == 5  # 160 sentences in batches of 32
    assert all(v["median_ms_per_step"] > 0 and len(v["epoch_seconds"]) == 1 for v in s.values())
    assert s["dropout-pytorch"]["over_dropout_pytorch"] == 1.0
    assert s["nodrop-pytorch"]["attention_kernel_used"] == "pytorch"
    assert s["nodrop-auto"]["attention_kernel_used"] == ("math" if r["precision_auto"] == "bf16" else "pytorch")
    assert s["nodrop-fp32"]["precision"] == "fp32" and s["nodrop-fp32"]["attention_kernel_used"] == "pytorch"
