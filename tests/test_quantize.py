"""Quantization: the fallback ladder, the calibration sample, torch int8, the config's refusals, and
runs that must fail: a broken export and a budget no setting can keep."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from compress.data import Split
from compress.errors import CompressError, ConfigError
from compress.quant import ladder, samples, torch_int8
from compress.quant.ladder import Rung
from compress.tasks import load_config

from .conftest import ROOT, SHIPPED, invoke
from .test_models import tiny_bert

TINY = ROOT / "pipelines" / "tiny.yaml"


def rung(name, drop, latency, parity_ok=True):
    return Rung(name, {"describe": name}, accuracy=0.9 - drop / 100, drop=drop, latency_ms=latency, parity_ok=parity_ok)


def test_ladder_stops_at_the_configured_setting_when_it_keeps_the_budget():
    def never():
        raise AssertionError("a later rung was built although the first kept the budget")

    kept, tried = ladder.walk(ladder.lazily(lambda: rung("configured", 0.4, 5.0), never), budget=1.0, ladder=True)
    assert kept is tried[0] and kept.kept and len(tried) == 1


def test_ladder_keeps_the_fastest_rung_inside_the_budget():
    rungs = [rung("configured", 2.5, 3.0), rung("per_channel", 0.9, 4.0), rung("exclude_sensitive", 0.2, 3.5),
             rung("dynamic", 0.1, 6.0)]
    kept, tried = ladder.walk(iter(rungs), budget=1.0, ladder=True)
    assert kept.name == "exclude_sensitive" and [r.name for r in tried] == [r.name for r in rungs]
    assert [r.kept for r in tried] == [False, False, True, False]


def test_ladder_never_keeps_a_rung_that_fails_parity_or_was_not_measured():
    broken = Rung("per_channel", {"describe": "x"}, problems=["quantization failed: ValueError: no scale"])
    rungs = [rung("configured", 3.0, 1.0), broken, rung("exclude_sensitive", 0.0, 0.5, parity_ok=False)]
    kept, tried = ladder.walk(iter(rungs), budget=1.0, ladder=True)
    assert kept is None and len(tried) == 3
    error = ladder.failure("student-int8", "quantize.variants.0", 1.0, "student-onnx", 0.9, 500, tried)
    assert error.problems[0].startswith("quantize.variants.0: student-int8: no setting keeps accuracy within 1 points")
    assert len(error.problems) == 4
    assert "drop +3.00 points (over budget 1)" in error.problems[1]
    assert "quantization failed: ValueError: no scale" in error.problems[2]
    assert "parity check failed" in error.problems[3]


def test_ladder_off_fails_at_once():
    kept, tried = ladder.walk(iter([rung("configured", 2.0, 1.0), rung("per_channel", 0.0, 1.0)]), 1.0, ladder=False)
    assert kept is None and [r.name for r in tried] == ["configured"]


def test_calibration_sample_is_seeded_disjoint_from_held_out_rows_and_hashed():
    cfg = load_config(TINY)
    train = Split("train", [f"sentence {i}" for i in range(300)], [i % 2 for i in range(300)])
    calib = samples.calibration_split(train, 32, seed=0)
    assert calib.texts == samples.calibration_split(train, 32, seed=0).texts
    assert calib.texts != samples.calibration_split(train, 32, seed=1).texts
    held = samples.held_out(cfg, train, reserved=32)
    assert not set(calib.texts) & set(held.split.texts)
    assert len(held.split) == min(cfg.quantize.accuracy_samples, 300 - 32)
    rows = [[1, 2, 3], [4, 5]]
    assert samples.token_hash(rows) == samples.token_hash([[1, 2, 3], [4, 5]]) != samples.token_hash([[1, 2, 3], [4]])
    with pytest.raises(CompressError, match="400 calibration sentences asked for, but the training split has 300"):
        samples.calibration_split(train, 400, seed=0)


def test_calibration_feeds_share_one_width():
    feeds = samples.fixed_width_feeds([[5, 6, 7], [5], [5, 6]], pad_id=0, names=["input_ids", "attention_mask"])
    assert {f["input_ids"].shape for f in feeds} == {(1, 3)}
    assert feeds[1]["attention_mask"].tolist() == [[1, 0, 0]]


@pytest.mark.parametrize("engine", ["torch.ao", "torchao"])
def test_torch_int8_round_trips_without_pickle(tmp_path, engine):
    if engine == "torchao" and torch_int8.torchao_version() is None:
        pytest.skip("torchao is not installed (pip install 'compress[torchao]')")
    from compress.models import train_wordlevel_tokenizer

    source = tmp_path / "student"
    tiny_bert(2).save_pretrained(source, safe_serialization=True)
    tokenizer = train_wordlevel_tokenizer(["a good film", "a bad film"], max_length=16)
    tokenizer.save_pretrained(source)
    ids = torch.tensor([[2, 5, 7, 9, 3]])
    with torch.inference_mode():
        fp32 = tiny_bert(2)(input_ids=ids).logits
        model = torch_int8.quantize(tiny_bert(2), engine)
        quantized = model(input_ids=ids).logits
    recipe = torch_int8.save(model, tokenizer, tmp_path / "int8", source, engine)
    assert recipe["storage"] == ("safetensors" if engine == "torchao" else "requantize")
    assert not list((tmp_path / "int8").glob("*.bin")) and not list((tmp_path / "int8").glob("*.pt"))
    loaded, _ = torch_int8.load(tmp_path / "int8")
    with torch.inference_mode():
        again = loaded(input_ids=ids).logits
    assert torch.allclose(again, quantized, atol=1e-5)  # what was measured is what loads
    assert 0 < (quantized - fp32).abs().max() < 0.5  # int8 rounding moves the logits a little, not far
    if engine == "torch.ao":  # the recipe is bound to the fp32 weights it re-quantizes
        (source / "model.safetensors").write_bytes(b"changed")
        with pytest.raises(CompressError, match="is gone or changed"):
            torch_int8.load(tmp_path / "int8")


def variants(*items: str) -> str:
    return "quantize.variants=[" + ", ".join(items) + "]"


@pytest.mark.parametrize("overrides, expected", [
    ([variants("{name: q, method: bnb_int8}")],
     "quantize.variants.0.method: bnb_int8 needs a CUDA GPU (bitsandbytes has no CPU kernels), but targets is ['cpu']"),
    ([variants("{name: q, method: fp16}")], "quantize.variants.0.method: fp16 on a CPU target"),
    ([variants("{name: q, method: onnx_static, calibration: {samples: 0}}")],
     "quantize.variants.0.calibration.samples: 0; static quantization needs calibration data"),
    ([variants("{name: q, method: onnx_static, calibration: {samples: 5000}}")],
     "quantize.variants.0.calibration.samples: 5000 calibration sentences, but data.generated_size makes only 2000"),
    ([variants("{name: q, method: onnx_dynamic}", "{name: q, method: onnx_static}")],
     "quantize.variants.1.name: q is listed twice"),
    ([variants("{name: student-onnx, method: onnx_dynamic}")],
     "quantize.variants.0.name: student-onnx is a variant every run makes"),
    (["targets=[gpu]", "ship.variant=q", variants("{name: q, method: bnb_nf4}")],
     "ship.variant: q is a bnb_nf4 variant: bitsandbytes models live in PyTorch on CUDA and are never exported to ONNX"),
    (["ship.variant=q", variants("{name: q, method: torch_dynamic}")],
     "ship.variant: q is a torch_dynamic variant (a PyTorch model); the bundle ships ONNX"),
    (["targets=[gpu]", variants("{name: q, method: onnx_dynamic}"), "ship.variant=student-onnx"],
     "quantize.variants.0.method: onnx_dynamic makes int8 kernels for CPUs, but targets is ['gpu']"),
    ([variants("{name: q, method: onnx_dynamic, calibration: {samples: 8}}")],
     "quantize.variants.0: calibration: only used with method onnx_static, but method is onnx_dynamic"),
    ([variants("{name: q, method: onnx_static, embeddings: int4}")],
     "quantize.variants.0: embeddings: only used with method onnx_dynamic, but method is onnx_static"),
    ([variants("{name: q, method: onnx_dynamic, embedding_block: 32}")],
     "quantize.variants.0: embedding_block: only used with embeddings: int4"),
    ([variants("{name: q, method: onnx_dynamic, embeddings: int4, embedding_block: 48}")],
     "quantize.variants.0: embedding_block: 48 is not a power of two"),
    (["quantize.method=dynamic"], "quantize.method: moved into each entry of quantize.variants"),
    (["ship.variant=nope"], "ship.variant: nope is not produced by this run; valid: student-onnx, student-int8"),
])
def test_validate_refuses_impossible_combinations(overrides, expected):
    result = invoke("validate", TINY, *overrides)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_gpu_variants_validate_for_a_gpu_target():
    cfg = load_config(TINY, ["targets=[cpu, gpu]", "bench.targets=[cpu, gpu]",
                             variants("{name: student-int8, method: onnx_dynamic}", "{name: q-fp16, method: fp16}",
                                      "{name: q-nf4, method: bnb_nf4}")])
    assert [v.method for v in cfg.quantize.variants] == ["onnx_dynamic", "fp16", "bnb_nf4"]
    with pytest.raises(ConfigError):
        load_config(TINY, [variants("{name: q-fp16, method: fp16}"), "ship.variant=student-onnx"])


def test_broken_export_fails_the_run_naming_the_difference(tmp_path, monkeypatch):
    """An exporter that writes a wrong graph (the classifier's weights changed after export) must stop
    the run at the export stage, with the shape and the difference, before anything is quantized or shipped."""
    import optimum.exporters.onnx as exporters

    real = exporters.main_export

    def broken(model_name_or_path, output, **kwargs):
        real(model_name_or_path, output, **kwargs)
        path = output / "model.onnx"
        model = onnx.load(str(path))
        head = next(n for n in model.graph.node if "logits" in n.output)  # the classifier's Gemm
        weight = next(i for i in model.graph.initializer if i.name == head.input[1])
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * -3.0, weight.name))
        onnx.save(model, str(path))

    monkeypatch.setattr(exporters, "main_export", broken)
    result = invoke("run", TINY, "--runs-dir", tmp_path / "runs", f"ship.dir={tmp_path / 'exports'}", *SHIPPED)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("error: export: teacher-onnx at batch ") for line in lines), lines
    assert "logits differ by" in lines[0] and "(atol 0.0001)" in lines[0] and "model.onnx" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs" / "tiny" / "quantize").exists() and not (tmp_path / "exports" / "tiny").exists()


def test_budget_no_setting_keeps_walks_the_ladder_then_fails_listing_every_rung(tmp_path):
    result = invoke("run", TINY, "--runs-dir", tmp_path / "runs", f"ship.dir={tmp_path / 'exports'}", *SHIPPED,
                    variants("{name: student-int8, method: onnx_static, budget: -50, calibration: {samples: 16}}"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: quantize.variants.0: student-int8: no setting keeps accuracy within -50 points of "
                               "student-onnx"), lines
    tried = [line.split()[2] for line in lines[1:]]
    assert tried == ["configured", "per_channel", "exclude_sensitive", "dynamic"], lines
    assert "node(s) kept fp32" in lines[3]
    assert "Traceback" not in result.output
    assert not (tmp_path / "exports" / "tiny").exists()


def test_quantized_logits_stay_close_on_the_parity_shapes(tiny_shipped):
    """The int8 variant the tiny run ships is held to the fp32 PyTorch student at every saved shape."""
    from compress.io import read_json

    run_dir, _, _ = tiny_shipped
    q = read_json(run_dir / "quantize" / "stage.json")["metrics"]
    assert q["isa"] and isinstance(q["vnni"], bool)
    for v in q["variants"]:
        assert [r["shape"] for r in v["parity"]] == [r["shape"] for r in q["variants"][0]["parity"]]
        assert all(r["top1_agreement"] >= 0.9 and r["cosine"] >= 0.95 for r in v["parity"])
    assert np.isfinite([r["max_abs_diff"] for v in q["variants"] for r in v["parity"]]).all()


def _gather_graph(table: np.ndarray, path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Gather", ["table", "input_ids"], ["out"], name="embed")], "g",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["n"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", table.shape[1]])],
                              [numpy_helper.from_array(table, "table")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("block", [16, 32])
def test_int4_embeddings_halve_the_table_and_beat_plain_min_max_rounding(tmp_path, block):
    """Each block of the table is stored in 4 bits (two a byte) with a scale and a 4-bit zero point: ONNX Runtime
    gives back exactly what the stored integers say, every block's squared error is at most that of plain min..max
    rounding (the clipping search only keeps a narrower grid when it is closer), the whole table is closer than
    symmetric max|x| / 7 scaling, zero rows stay zero, and the graph loads both as .onnx and in the ORT format
    (model.ort) that mobile builds read."""
    import onnxruntime as ort

    from compress.quant.onnx_int8 import int4_embeddings

    rng = np.random.default_rng(0)
    width = 96  # 96 / 32 = 3 blocks a row: an odd count of zero points, padded to two bytes
    table = (rng.standard_normal((50, width)) * rng.uniform(0.01, 3, (50, 1))).astype(np.float32)
    table[3, 5] = 40.0  # an outlier the search may clip
    table[7] = 0  # an all-zero row must not divide by zero
    path = tmp_path / "m.onnx"
    _gather_graph(table, path)
    assert int4_embeddings(path, block) == 1
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node] == ["GatherBlockQuantized"]
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    blocks = width // block
    assert stored["table_q4"].dtype == np.uint8 and stored["table_q4"].shape == (50, width // 2)
    assert stored["table_q4_scales"].shape == (50, blocks)
    assert stored["table_q4_zero_points"].shape == (50, (blocks + 1) // 2)
    q = np.stack([stored["table_q4"] & 15, stored["table_q4"] >> 4], -1).reshape(50, blocks, block).astype(np.float32)
    zp = np.stack([stored["table_q4_zero_points"] & 15, stored["table_q4_zero_points"] >> 4], -1).reshape(50, -1)[:, :blocks]
    expected = ((q - zp[..., None]) * stored["table_q4_scales"][..., None]).reshape(50, width)

    def plain(grid_lo, grid_hi, levels, offset):  # round to a uniform grid over [grid_lo, grid_hi], no search
        scale = np.where(grid_hi > grid_lo, (grid_hi - grid_lo) / levels, 1.0)
        return (np.clip(np.rint(b / scale[..., None]) + offset(grid_lo, scale)[..., None], 0, levels)
                - offset(grid_lo, scale)[..., None]) * scale[..., None]

    b = table.reshape(50, blocks, block)
    lo, hi = np.minimum(b.min(-1), 0), np.maximum(b.max(-1), 0)
    min_max = plain(lo, hi, 15, lambda lo, s: np.rint(-lo / s))
    amax = np.abs(b).max(-1)
    symmetric = plain(-amax * 8 / 7, amax, 15, lambda lo, s: np.full_like(s, 8.0))
    ours = expected.reshape(50, blocks, block)
    assert (((ours - b) ** 2).sum(-1) <= ((min_max - b) ** 2).sum(-1) + 1e-9).all()
    assert ((ours - b) ** 2).sum() < ((symmetric - b) ** 2).sum()
    ids = np.array([0, 7, 49, 3, 3], dtype=np.int64)
    for target in (path, tmp_path / "m.ort"):
        if target.suffix == ".ort":
            opts = ort.SessionOptions()
            opts.optimized_model_filepath = str(target)
            opts.add_session_config_entry("session.save_model_format", "ORT")
            ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        got = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids})[0]
        assert np.allclose(got, expected[ids], atol=1e-6)
        assert np.array_equal(got[1], np.zeros(width, dtype=np.float32))
        assert not np.array_equal(got, table[ids])  # it really is quantized


def test_int4_embeddings_take_the_word_table_and_leave_the_small_ones_fp32(tmp_path):
    """By default only the table looked up by input_ids (the word embeddings) goes to 4 bits; a position table
    looked up by another tensor stays a plain fp32 Gather with its values unchanged. tables="all" takes both."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from compress.quant.onnx_int8 import int4_embeddings

    rng = np.random.default_rng(1)
    word, position = rng.standard_normal((40, 64)).astype(np.float32), rng.standard_normal((16, 64)).astype(np.float32)
    graph = helper.make_graph(  # GPT-2's export reshapes input_ids before the lookup: that is still the word table
        [helper.make_node("Reshape", ["input_ids", "flat"], ["ids_flat"]),
         helper.make_node("Gather", ["word", "ids_flat"], ["w"]), helper.make_node("Gather", ["position", "pos"], ["p"]),
         helper.make_node("Add", ["w", "p"], ["out"])], "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["n"]),
         helper.make_tensor_value_info("pos", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 64])],
        [numpy_helper.from_array(word, "word"), numpy_helper.from_array(position, "position"),
         numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat")])
    for tables, converted in (("word", ["GatherBlockQuantized", "Gather"]),
                              ("all", ["GatherBlockQuantized", "GatherBlockQuantized"])):
        path = tmp_path / f"{tables}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        assert int4_embeddings(path, 32, tables=tables) == converted.count("GatherBlockQuantized")
        model = onnx.load(str(path))
        assert [n.op_type for n in model.graph.node][1:3] == converted
        stored = {t.name for t in model.graph.initializer}
        assert "word" not in stored and ("position" in stored) == (tables == "word")
        ids, pos = np.array([0, 39, 5], dtype=np.int64), np.array([0, 1, 15], dtype=np.int64)
        out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids, "pos": pos})[0]
        assert 0 < np.abs(out - (word[ids] + position[pos])).max() < 0.5
    with pytest.raises(ValueError, match="tables: 'some'"):
        int4_embeddings(tmp_path / "word.onnx", 32, tables="some")


def test_int4_embeddings_refuse_a_graph_without_a_table(tmp_path):
    from onnx import TensorProto, helper

    from compress.quant.onnx_int8 import int4_embeddings

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    with pytest.raises(ValueError, match="no embedding table was converted"):
        int4_embeddings(tmp_path / "m.onnx", 32)
