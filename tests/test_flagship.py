"""benchmarks/flagship.py and benchmarks/int8_peak.py: the work counter against hand-computed values, the peak
GEMM graphs against numpy, the optimum + ORT int8 peer and its cache, and both scripts end to end on the
shared tiny run (few queries: the loop is tested, not the figures)."""

from __future__ import annotations

import numpy as np
import pytest

from compress.bench import peak
from compress.bench.peak import bert_ops, count_ops, gemm_input, gemm_model

from .conftest import ROOT, read_json
from .conftest import TINY_BERT as TINY


def _scripts():
    from benchmarks import flagship, int8_peak

    return flagship, int8_peak


def test_bert_formula_by_hand():
    # per layer 2*tokens*(4h^2 + 2hf) + 2*2*tokens*s*h; pooler 2*b*h^2, classifier 2*b*h*labels
    ops = bert_ops({"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_labels": 2}, batch=2, seq=4)
    assert ops == {"linear": 2 * 2 * 8 * (4 * 64 + 2 * 8 * 16), "attention": 2 * 2 * 2 * 8 * 4 * 8,
                   "head": 2 * 2 * (64 + 16), "total": 16384 + 2048 + 320}


def test_count_ops_matches_the_formula_unfused_and_fused_int8(tiny_bert, tmp_path):
    from compress.onnxgraph import optimize
    from compress.quant.onnx_int8 import Settings, quantize_dynamic

    want = bert_ops(TINY, batch=3, seq=16)["total"]
    plain = count_ops(tiny_bert / "onnx" / "model.onnx", 3, 16)
    assert plain["total"] == want and plain["int8"] == 0  # MatMul / Gemm nodes, attention products included
    fused = tmp_path / "fused.onnx"
    optimize(tiny_bert / "onnx" / "model.onnx", fused)
    quantize_dynamic(fused, tmp_path / "int8.onnx", Settings("dynamic", per_channel=True, reduce_range=False))
    q = count_ops(tmp_path / "int8.onnx", 3, 16)
    kinds = {n["op_type"] for n in q["nodes"]}
    assert "QAttention" in kinds and "MatMulInteger" in kinds
    assert q["total"] == want
    attention = bert_ops(TINY, batch=3, seq=16)["attention"]
    assert q["fp32"] == attention  # only the products inside QAttention stay fp32
    assert q["int8"] == want - attention


@pytest.mark.parametrize("kernel", peak.KERNELS)
def test_gemm_model_computes_the_product(kernel):
    import onnxruntime as ort
    from onnx import numpy_helper

    model = gemm_model(kernel, 16, 32, 24)
    b = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "B"))
    a = gemm_input(kernel, 16, 32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(["Y"], {"A": a})[0]
    if kernel != "MatMul":  # 7-bit weights where this CPU sums u8 x s8 pairs in int16 (no VNNI), else 8-bit
        from compress.envinfo import int8_isa
        from compress.quant.onnx_int8 import reduce_range_for

        assert np.abs(b.astype(np.int32)).max() == (63 if reduce_range_for(int8_isa()) else 127)
    if kernel == "MatMulInteger":  # u8 activations with zero point 128, s8 weights, exact int32 sums
        np.testing.assert_array_equal(got, (a.astype(np.int32) - 128) @ b.astype(np.int32))
    elif kernel == "DynamicQuantizeMatMul":  # weights scaled by 0.01; the activations quantized to 8 bits
        ref = a @ (b.astype(np.float32) * 0.01)
        assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
    else:
        np.testing.assert_allclose(got, a @ b, rtol=1e-4, atol=1e-4)
    g = peak.time_gemm(kernel, 16, 32, 24, threads=1, repeats=2, warmup=1)
    assert g.gops_best > 0
    assert g.gops_best == pytest.approx(2 * 16 * 32 * 24 / g.best_seconds / 1e9, rel=0.01, abs=0.1)


def test_peer_is_built_once_then_read_from_the_cache(tiny_bert, tmp_path):
    from compress.bench import peer

    first = peer.build(tiny_bert / "model", tmp_path / "peer", per_channel=True)
    assert not first["cached"] and "channel-wise: True" in first["quantization_config"]
    ops = count_ops(first["path"], 2, 8)
    assert ops["int8"] > 0 and ops["total"] == bert_ops(TINY, 2, 8)["total"]
    again = peer.build(tiny_bert / "model", tmp_path / "peer", per_channel=True)
    assert again["cached"] and again["path"] == first["path"]
    other = peer.build(tiny_bert / "model", tmp_path / "peer", per_channel=False)  # another setting: rebuilt
    assert not other["cached"] and "channel-wise: False" in other["quantization_config"]


def test_inside_training_finds_rows_that_are_pieces_of_training_rows(tmp_path):
    from compress.data import Split
    from compress.tasks import load_config

    flagship, _ = _scripts()
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na fine , funny film\t1\ndull and slow\t0\n")
    cfg = load_config(ROOT / "pipelines" / "tiny.yaml", [f"data.source={tmp_path}", "quantize.enabled=false", "ship.variant=student-onnx"])
    rows = Split("validation", ["fine , funny", "DULL", "a fine , funny film", "funny film dull", "great"], [1, 0, 1, 0, 1])
    assert flagship.inside_training(cfg, rows).tolist() == [True, True, True, False, False]


def test_flagship_held_out_split_is_the_validation_rows_no_stage_read(tiny_shipped, tmp_path, capsys):
    import shutil

    import yaml

    flagship, _ = _scripts()
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_shipped[0], run)
    out = tmp_path / "held.json"
    fast = ["--rounds", "1", "--warmup", "1", "--queries", "3", "--min-seconds", "0", "--sequence-length", "16"]
    # tiny.yaml has no validation split: one line naming the option and the run's config, exit 2, nothing written
    assert flagship.main(["--run", str(run), "--split", "held-out", *fast, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --split held-out:") and "data.validation_split" in err[0]
    assert not out.exists()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"].update(validation_split="validation", max_validation_samples=50)
    cfg["quantize"]["accuracy_samples"] = 40
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert flagship.main(["--run", str(run), "--split", "held-out", *fast, "--out", str(out)]) == 0
    r = read_json(out)
    ev, unseen = r["settings"]["eval"], r["rows_outside_training_text"]
    assert ev["sentences"] == 150 and ev["split"] == "validation (rows 51-200, read by no stage)"
    assert 0 <= unseen["rows"] <= 150 and set(unseen["accuracy"]) == {"teacher", "peer", "student"}
    cfg["quantize"]["accuracy_samples"] = 200  # the budgets read every row: none is left
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert flagship.main(["--run", str(run), "--split", "held-out", *fast, "--out", str(tmp_path / "none.json")]) == 2
    assert "none is left" in capsys.readouterr().err and not (tmp_path / "none.json").exists()


def test_scripts_end_to_end_on_the_tiny_run(tiny_shipped, tmp_path):
    import shutil

    flagship, int8_peak = _scripts()
    shared, bundle, _ = tiny_shipped
    run = tmp_path / "runs" / "tiny"  # a copy: the shared run stays read-only (the peer is cached in <run>/flagship)
    shutil.copytree(shared, run)
    path, tok, where = flagship.shipped_student(run)
    assert path == bundle / "model.onnx" and tok == bundle and where.startswith("bundle")
    out = tmp_path / "flagship.json"
    fast = ["--rounds", "1", "--warmup", "1", "--queries", "5", "--min-seconds", "0", "--sequence-length", "16"]
    assert flagship.main(["--run", str(run), *fast, "--out", str(out)]) == 0
    r = read_json(out)
    for key in ("speedup", "size_ratio", "speedup_vs_peer", "retention", "environment", "targets"):
        assert key in r
    t, s = r["models"]["teacher"], r["models"]["student"]
    assert r["speedup"] == pytest.approx(t["latency_ms"]["p50"] / s["latency_ms"]["p50"], rel=0.01)
    assert r["size_ratio"] == pytest.approx(t["size_bytes"] / s["size_bytes"], rel=0.01)
    assert r["report_json"]["student_accuracy"] == pytest.approx(s["accuracy"], abs=1e-4)  # same split, same model
    # the int8 peer and student also one sentence at a time, unpadded, as the bench scored the shipped variant; the
    # retention targets are judged on that figure
    assert r["report_json"]["student_accuracy_batch1"] == pytest.approx(s["accuracy_batch1"], abs=1e-4)
    assert "accuracy_batch1" not in t and "accuracy_batch1" in r["models"]["peer"]
    assert r["targets"]["retention"]["value"] == r["retention_batch1"] == s["retention_batch1"]
    versus = r["accuracy_vs_peer"]  # paired: the difference is exactly the two accuracies' difference
    assert versus["difference"] == pytest.approx(s["accuracy"] - r["models"]["peer"]["accuracy"], abs=1e-4)
    assert versus["ci95"][0] <= versus["difference"] <= versus["ci95"][1]
    assert (run / "flagship" / "peer" / "int8" / "model_quantized.onnx").is_file()
    out2 = tmp_path / "int8_peak.json"
    assert int8_peak.main(["--run", str(run), "--shape", "128x128x128", "--repeats", "2", "--batch-size", "2",
                           "--sequence-length", "16", "--queries", "3", "--min-seconds", "0", "--out", str(out2)]) == 0
    p = read_json(out2)
    assert p["int8_peak_gops"] > 0 and p["fp32_peak_gops"] > 0
    assert p["student"]["ops_match_formula"]
    # share is rounded to 4 decimals, achieved_gops to 0.001 (on the tiny model it is a few GOP/s)
    assert p["student"]["share_of_int8_peak"] == pytest.approx(p["student"]["achieved_gops"] / p["int8_peak_gops"],
                                                               abs=1e-4)


def test_student_shapes_cuts_quantizes_and_times_each_shape(tiny_shipped, tmp_path, capsys):
    import onnx

    from benchmarks import student_shapes

    run, _, _ = tiny_shipped  # read-only: the cut models go to --work
    out = tmp_path / "shapes.json"
    fast = ["--rounds", "1", "--warmup", "1", "--queries", "3", "--min-seconds", "0", "--sequence-length", "16"]
    assert student_shapes.main(["--run", str(run), "--shapes", "1x1x32", "2x2x64", "--work", str(tmp_path / "work"),
                                "--all-rows", *fast, "--out", str(out)]) == 0
    r = read_json(out)
    assert set(r["models"]) == {"teacher", "shipped", "1x1x32", "1x1x32-all-rows", "2x2x64", "2x2x64-all-rows"}
    cut = r["models"]["1x1x32"]
    assert (cut["layers"], cut["heads"], cut["intermediate_size"]) == (1, 1, 32)
    assert cut["parameters"] < r["models"]["2x2x64"]["parameters"]
    graph = onnx.load(cut["path"]).graph
    ops = [n.op_type for n in graph.node]
    assert "QAttention" not in ops and "GatherBlockQuantized" in ops  # the one layer on the first token, int4 tables
    assert cut["first_token_only"] and not r["models"]["1x1x32-all-rows"]["first_token_only"]
    ops = [n.op_type for n in onnx.load(r["models"]["1x1x32-all-rows"]["path"]).graph.node]
    assert ops.count("QAttention") == 1 and "GatherBlockQuantized" in ops  # one fused int8 layer over every row
    config = read_json(tmp_path / "work" / "1x1x32" / "pytorch" / "config.json")
    assert config["num_hidden_layers"] == 1 and config["intermediate_size"] == 32 and config["pruned_heads"]
    for row in r["models"].values():
        assert row["speedup"] == pytest.approx(r["teacher_p50_ms"] / row["p50_ms"], rel=0.01)

    for bad, says in (("3x1x2", "asks for 3 layers"), ("2x0x8", "is not LAYERSxHEADSxFFN")):
        assert student_shapes.main(["--run", str(run), "--shapes", bad, "--work", str(tmp_path / "bad"), *fast,
                                    "--out", str(tmp_path / "bad.json")]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
    assert not (tmp_path / "bad.json").exists()
