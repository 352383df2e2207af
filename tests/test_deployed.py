"""Accuracy as deployed (compress/bench/deployed.py): the shipped and the int8 variants scored one sentence at a
time, unpadded, in the bench, the quantization budgets, the report, the model card and the manifest; retention
targets judged on it. And the generated demo task (compress/generated.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from compress import onnxrun, records
from compress.bench import deployed
from compress.bench.torch_model import torch_logits
from compress.config import DataConfig
from compress.data import load_split
from compress.generated import STRENGTH, generate_sentiment

from .conftest import read_json

# Two sentences: 3 tokens (class 0) and 8 tokens (class 1). The models below answer class 1 exactly when the row
# they are given is wider than 5 tokens, padding included: batched, the short one is padded to 8 and answered wrong.
ROWS = [[2, 7, 3], [2, 7, 8, 9, 10, 11, 12, 3]]
LABELS = np.array([0, 1])


def width_model(path):
    """An ONNX classifier whose logits are [0, width - 5.5], width being the row's length with its padding."""
    import onnx
    from onnx import TensorProto, helper

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "length"])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])
    const = [helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("zero", 0.0), ("one", 1.0), ("half", 5.5))]
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "one"], ["ones"]),  # ones over every column, padded ones included
        helper.make_node("ReduceSum", ["ones", "axis"], ["width"], keepdims=1),
        helper.make_node("Sub", ["width", "half"], ["pos"]),
        helper.make_node("Mul", ["pos", "zero"], ["neg"]),
        helper.make_node("Concat", ["neg", "pos"], ["logits"], axis=1),
        helper.make_node("Identity", ["input_ids"], ["unused"]),
    ]
    axis = helper.make_tensor("axis", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(nodes, "width", [ids, mask], [logits], initializer=[*const, axis])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


class Recorder:
    """An ONNX Runtime session that records what it is fed."""

    def __init__(self, sess):
        self.sess, self.fed = sess, []

    def get_inputs(self):
        return self.sess.get_inputs()

    def run(self, names, feeds):
        self.fed.append(feeds)
        return self.sess.run(names, feeds)


def test_onnx_batch1_feeds_each_sentence_alone_unpadded(tmp_path):
    sess = Recorder(onnxrun.session(width_model(tmp_path / "width.onnx")))
    batched = onnxrun.logits(sess, ROWS, pad_id=0).argmax(-1)
    assert batched.tolist() == [1, 1]  # the short sentence padded to 8 tokens: answered wrong
    sess.fed.clear()
    alone = deployed.onnx_logits(sess, ROWS).argmax(-1)
    assert alone.tolist() == [0, 1]
    assert [f["input_ids"].tolist() for f in sess.fed] == [[ROWS[0]], [ROWS[1]]]  # one row a run, its own length
    assert all(f["attention_mask"].min() == 1 for f in sess.fed)
    figures = deployed.figures(alone, batched, LABELS)
    assert figures["accuracy_batch1"] == 1.0 and figures["changed_at_batch1"] == 1
    assert figures["predictions_batch1"] == [0, 1]


def test_torch_batch1_feeds_each_sentence_alone_unpadded():
    import torch

    class Width(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            pos = torch.full((input_ids.shape[0], 1), input_ids.shape[1] - 5.5)
            return SimpleNamespace(logits=torch.cat([torch.zeros_like(pos), pos], dim=1))

    model = Width()
    assert torch_logits(model, ROWS, 0, "cpu").argmax(-1).tolist() == [1, 1]
    assert deployed.torch_logits(model, ROWS, "cpu").argmax(-1).tolist() == [0, 1]


def test_quantization_budgets_are_judged_one_sentence_at_a_time(tmp_path):
    from compress.tasks.classification.quantize import Job

    cfg = SimpleNamespace(bench=SimpleNamespace(threads=1, eval_batch_size=64))
    job = Job(cfg, None, "avx2", tmp_path, tmp_path, tmp_path, tmp_path, SimpleNamespace(pad_token_id=0), None,
              ROWS, LABELS, [], [], np.zeros((1, 4), dtype=np.int64))
    assert job.onnx_accuracy(width_model(tmp_path / "width.onnx")) == 1.0  # batched, it would be 0.5


def test_scored_at_batch1_are_the_shipped_and_the_int8_variants():
    assert deployed.scored_at_batch1("student-int8", "int8", "student-int8")
    assert deployed.scored_at_batch1("student-onnx", "fp32", "student-onnx")  # shipped, though fp32
    assert deployed.scored_at_batch1("student-torch-int8", "int8", "student-int8")
    assert not deployed.scored_at_batch1("student-onnx", "fp32", "student-int8")


def _variant(name, retention, retention_batch1=None, size=1, p50=1.0):
    return {"name": name, "retention": retention, "retention_batch1": retention_batch1, "accuracy": retention,
            "accuracy_batch1": retention_batch1, "size_bytes": size, "latency_ms": {"p50": p50}}


def test_the_retention_floor_is_judged_at_batch1_where_measured():
    from compress.tasks.classification.report import recommend

    variants = [_variant("teacher", 1.0, size=10, p50=10), _variant("student-onnx", 0.995, size=5, p50=2),
                _variant("student-int8", 0.992, 0.985, size=2, p50=1)]
    rec = recommend(variants, 0.99)  # batched, student-int8 keeps 99.2%; one at a time only 98.5%
    assert rec["size"]["name"] == rec["latency"]["name"] == "student-onnx"
    picked = recommend(variants, 0.98)
    assert picked["size"]["name"] == "student-int8" and picked["size"]["retention"] == 0.985
    assert picked["size"]["judged_at_batch1"] and not recommend(variants[:2], 0.98)["size"]["judged_at_batch1"]


def test_a_report_from_before_batch1_still_loads_and_renders(tiny_shipped):
    from compress.reports.accuracy import deployed_markdown, markdown
    from compress.tasks.classification.ship import deployed_figures

    run_dir, _, _ = tiny_shipped
    old = read_json(run_dir / "report.json")
    for v in old["variants"]:
        for key in ("accuracy_batch1", "accuracy_batch1_ci95", "retention_batch1", "retention_batch1_ci95",
                    "changed_at_batch1"):
            v.pop(key, None)
    old.pop("deployed")
    report = records.Report.model_validate(old)
    assert report.variant("student-int8").accuracy_batch1 is None
    assert deployed_markdown(report) == [] and deployed_figures(report.variant("student-int8")) == []
    assert "## Accuracy as deployed" not in markdown(report)


def test_the_tiny_run_reports_the_shipped_variant_at_batch1(tiny_shipped):
    run_dir, bundle, _ = tiny_shipped
    report = read_json(run_dir / "report.json")
    by = {v["name"]: v for v in report["variants"]}
    assert report["deployed"] == {"shipped": "student-int8", "scored": ["student-int8", "student-int8-static"]}
    int8 = by["student-int8"]
    lo, hi = int8["accuracy_batch1_ci95"]
    assert lo <= int8["accuracy_batch1"] <= hi
    assert int8["retention_batch1"] == pytest.approx(int8["accuracy_batch1"] / by["teacher"]["accuracy"], abs=1e-5)
    assert "accuracy_batch1" not in by["student-onnx"] and "accuracy_batch1" not in by["teacher"]
    assert report["quantize"]["held_out"]["batch"] == "one sentence at a time, unpadded"
    md = (run_dir / "report.md").read_text()
    assert f"| student-int8 (shipped) | {int8['accuracy']:.4f} | {int8['accuracy_batch1']:.4f} |" in md
    assert "Accuracy as deployed" in (run_dir / "report.html").read_text()
    manifest = read_json(bundle / "manifest.json")
    assert manifest["metrics"]["accuracy_batch1"] == int8["accuracy_batch1"]
    card = (bundle / "README.md").read_text()
    assert f"one sentence at a time, unpadded, as a device runs it: accuracy {int8['accuracy_batch1']:.4f}" in card


# ----------------------------------------------------------------------------- the generated task


def _rule(sentence: str) -> int:
    return int(sum(STRENGTH.get(w, 0) for w in sentence.split()) > 0)


def test_generated_task_is_deterministic_with_clean_evaluation_and_noisy_training_labels():
    clean = generate_sentiment(2000, seed=3)
    assert clean == generate_sentiment(2000, seed=3) and clean != generate_sentiment(2000, seed=4)
    assert all(r["label"] == _rule(r["sentence"]) for r in clean)
    noisy = generate_sentiment(2000, seed=3, label_noise=0.2)
    assert noisy == generate_sentiment(2000, seed=3, label_noise=0.2)
    against = np.mean([r["label"] != _rule(r["sentence"]) for r in noisy])
    # 20% flipped on top of close calls flipped as a crowd would (about a quarter of all rows): 0.2 + 0.6 * ~0.25
    assert 0.3 < against < 0.42, against
    close = [r for r in noisy if abs(sum(STRENGTH.get(w, 0) for w in r["sentence"].split())) == 1]
    far = [r for r in noisy if abs(sum(STRENGTH.get(w, 0) for w in r["sentence"].split())) >= 5]
    assert np.mean([r["label"] != _rule(r["sentence"]) for r in close]) > np.mean(
        [r["label"] != _rule(r["sentence"]) for r in far]) + 0.1  # close calls are the noisy ones


def test_generated_splits_noise_only_the_training_labels():
    cfg = DataConfig(source="generated", generated_size=400, generated_label_noise=0.2)
    train, test = load_split(cfg, "train", 2), load_split(cfg, "test", 2)
    assert (len(train), len(test)) == (400, 200)
    assert all(y == _rule(t) for t, y in zip(test.texts, test.labels))
    assert sum(y != _rule(t) for t, y in zip(train.texts, train.labels)) > 80
    clean = load_split(DataConfig(source="generated", generated_size=400, generated_label_noise=0), "train", 2)
    assert all(y == _rule(t) for t, y in zip(clean.texts, clean.labels))
