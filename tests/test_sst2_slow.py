"""A cut-down distilbert.yaml on real data: MiniLM fine-tuned on 4,000 SST-2 sentences,
distilled into 3 layers, exported, quantized, benchmarked on all 872 test sentences."""

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
