"""The edge bundle, `compress verify` and the mobile (ORT format) stage, on one shared tiny run."""

import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from .conftest import ROOT, invoke, read_json

MODEL_FILES = {"model.onnx", "model.ort", "golden.json", "tokenizer.json", "README.md", "config.json"}


def copy_bundle(bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def test_verify_passes_on_a_fresh_bundle_and_never_imports_torch(tiny_shipped):
    _, bundle, _ = tiny_shipped
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "compress", "verify", str(bundle)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verify: ok" in out.stdout
    for name in ("model.onnx", "model.ort", "tokenizer.json"):
        assert re.search(rf"-\[ok\] {re.escape(name)}: \d+ golden texts", out.stdout), out.stdout
    # -X importtime lists every module imported, one per line: "import time: self | cumulative | name"
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported and "tokenizers" in imported  # the listing is real
    heavy = sorted(m for m in imported if m.split(".")[0] in ("torch", "transformers"))
    assert not heavy, heavy


def test_bundle_contents(tiny_shipped):
    run_dir, bundle, _ = tiny_shipped
    manifest = read_json(bundle / "manifest.json")
    assert MODEL_FILES <= set(manifest["files"])
    assert set(manifest["files"]) == {p.name for p in bundle.iterdir()} - {"manifest.json"}
    assert [t["name"] for t in manifest["inputs"]][:2] == ["input_ids", "attention_mask"]
    assert manifest["inputs"][0]["dynamic_axes"] == {"0": "batch_size", "1": "sequence_length"}
    assert manifest["outputs"][0] == {"name": "logits", "dtype": "float32", "shape": ["batch_size", 2],
                                      "dynamic_axes": {"0": "batch_size"}}
    assert manifest["labels"] == {"0": "LABEL_0", "1": "LABEL_1"}
    assert manifest["config_hash"] == read_json(run_dir / "report.json")["config_hash"]
    assert manifest["mobile"] == read_json(run_dir / "report.json")["mobile"]
    assert manifest["compress_version"].startswith("0.")
    golden = read_json(bundle / "golden.json")
    assert len(golden["samples"]) == 8 and golden["atol"] == 1e-3
    # the golden texts are real evaluation sentences, and the ids are the transformers tokenizer's
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundle)
    for s in golden["samples"]:
        assert s["input_ids"] == tokenizer(s["text"])["input_ids"]
        assert len(s["logits"]) == 2


def test_model_card_example_runs(tiny_shipped):
    _, bundle, _ = tiny_shipped
    card = (bundle / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=bundle)
    assert out.returncode == 0, out.stderr
    first = read_json(bundle / "golden.json")["samples"][0]
    assert out.stdout.split()[0] == first["predicted"]
    assert "compress verify" in card


def test_verify_names_model_onnx_after_one_byte_changed(tiny_shipped, tmp_path):
    import onnx

    _, bundle, _ = tiny_shipped
    bundle = copy_bundle(bundle, tmp_path)
    # One byte of the word embedding of [CLS], which every golden text starts with: loads, computes otherwise.
    data = bytearray((bundle / "model.onnx").read_bytes())
    graph = onnx.load(str(bundle / "model.onnx")).graph
    emb = next(t for t in graph.initializer if "word_embeddings" in t.name and len(t.dims) == 2)  # uint8 in int8
    size = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(emb.data_type)).itemsize
    cls = read_json(bundle / "golden.json")["samples"][0]["input_ids"][0]
    start = data.find(emb.raw_data)
    assert start > 0 and data.count(emb.raw_data) == 1
    data[start + cls * emb.dims[1] * size + size - 1] ^= 0x40  # the highest byte of the row's first value
    (bundle / "model.onnx").write_bytes(bytes(data))

    result = invoke("verify", bundle)
    assert result.exit_code == 2
    errors = result.stderr.splitlines()
    assert any(e.startswith("error: model.onnx: sha256") for e in errors), result.stderr
    assert any(e.startswith("error: model.onnx: logits differ from golden.json") for e in errors), result.stderr
    assert all("model.onnx" in e for e in errors), errors  # nothing else is blamed: model.ort still matches
    assert "-[ok] model.ort:" in result.stdout and "Traceback" not in result.output


def test_verify_fails_when_a_golden_output_is_edited(tiny_shipped, tmp_path):
    _, bundle, _ = tiny_shipped
    bundle = copy_bundle(bundle, tmp_path)
    golden = read_json(bundle / "golden.json")
    golden["samples"][3]["logits"][0] += 0.05
    (bundle / "golden.json").write_text(json.dumps(golden, indent=2) + "\n")

    result = invoke("verify", bundle)
    assert result.exit_code == 2
    errors = result.stderr.splitlines()
    assert any(e.startswith("error: golden.json: ") for e in errors), errors
    for model in ("model.onnx", "model.ort"):
        line = next(e for e in errors if e.startswith(f"error: {model}: logits differ from golden.json"))
        assert "on 1 of 8 golden texts, worst text 3" in line
    assert "-[ok] tokenizer.json:" in result.stdout


def test_verify_names_missing_and_unlisted_files(tiny_shipped, tmp_path):
    _, bundle, _ = tiny_shipped
    bundle = copy_bundle(bundle, tmp_path)
    (bundle / "tokenizer_config.json").unlink()
    shutil.copyfile(bundle / "model.onnx", bundle / "other.onnx")
    result = invoke("verify", bundle)
    assert result.exit_code == 2
    assert "error: tokenizer_config.json: missing" in result.stderr
    assert "error: other.onnx: in " in result.stderr and "not listed in manifest.json" in result.stderr
    assert len(result.stderr.splitlines()) == 2


def test_verify_on_a_folder_that_is_not_a_bundle(tmp_path):
    result = invoke("verify", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'manifest.json'}: not found; expected a bundle written by " \
                                    "compress run (exports/<name>/)"


def test_mobile_stage_metrics_and_report_section(tiny_shipped):
    run_dir, _, _ = tiny_shipped
    metrics = read_json(run_dir / "mobile" / "stage.json")["metrics"]
    assert metrics["enabled"] and metrics["variant"] == "student-int8"
    assert metrics["optimization_level"] == "all" and metrics["ort_bytes"] == (run_dir / "mobile" / "model.ort").stat().st_size
    shapes = [c["shape"] for c in metrics["parity"]]
    assert len(shapes) == 4 and shapes[2:] == ["batch 1 x length 32", "batch 4 x length 32"]
    assert shapes[0].startswith("batch 32 x ")
    for c in metrics["parity"]:
        assert c["max_abs_diff"] <= metrics["atol"] and c["top1_agreement"] == 1.0 and c["cosine"] > 0.9999
    eps = metrics["usability"]["execution_providers"]
    assert set(eps) == {"nnapi", "coreml_neuralnetwork", "coreml_mlprogram"}
    for ep in eps.values():
        assert 0 < ep["supported_nodes"] < ep["nodes"] and ep["partitions"] >= 1
        assert ep["suitability"] in ("yes", "maybe", "no") and ep["unsupported_ops"]
    # the tiny int8 BERT: dynamic quantization is an operator NNAPI does not take
    assert "ai.onnx:DynamicQuantizeLinear" in eps["nnapi"]["unsupported_ops"]
    assert metrics["usability"]["dynamic_inputs"][:2] == ["input_ids", "attention_mask"]
    assert "com.microsoft" in metrics["required_operators"] or "ai.onnx" in metrics["required_operators"]
    assert "checked" in metrics["mobile_package"]

    report = read_json(run_dir / "report.json")
    assert report["mobile"]["execution_providers"]["nnapi"]["partitions"] == eps["nnapi"]["partitions"]
    md = (run_dir / "report.md").read_text()
    assert "## ORT format (ONNX Runtime Mobile)" in md
    assert f"| NNAPI | {eps['nnapi']['partitions']} | {eps['nnapi']['supported_nodes']}/{eps['nnapi']['nodes']} |" in md
    assert md.count("- ok: batch ") == 4


def test_ort_parity_failure_names_the_shape(tiny_shipped, tmp_path, monkeypatch):
    """A converter whose model adds 0.01 x (batch size - 1) to the logits: only the batched shapes are off."""
    import onnx
    from onnx import TensorProto, helper
    from rich.console import Console

    from compress.errors import CompressError
    from compress.pipeline import Context
    from compress.tasks import load_config
    from compress.tasks.classification import mobile

    run_dir, _, overrides = tiny_shipped
    real_convert = mobile.convert

    def broken_convert(source, out, *args):
        model = onnx.load(str(source))
        g = model.graph
        g.output[0].name = "logits_raw"
        for node in g.node:
            node.output[:] = ["logits_raw" if o == "logits" else o for o in node.output]
        g.initializer.extend([helper.make_tensor("zero", TensorProto.INT64, [], [0]),
                              helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
                              helper.make_tensor("step", TensorProto.FLOAT, [], [0.01])])
        g.node.extend([
            helper.make_node("Shape", ["logits_raw"], ["shape"]),
            helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
            helper.make_node("Cast", ["batch"], ["batch_f"], to=TensorProto.FLOAT),
            helper.make_node("Sub", ["batch_f", "one"], ["extra"]),
            helper.make_node("Mul", ["extra", "step"], ["offset"]),
            helper.make_node("Add", ["logits_raw", "offset"], ["logits"]),
        ])
        g.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", 2]))
        del g.output[0]
        broken = tmp_path / "broken.onnx"
        onnx.save(model, str(broken))
        return real_convert(broken, out, *args)

    monkeypatch.setattr(mobile, "convert", broken_convert)
    cfg = load_config(ROOT / "pipelines" / "tiny.yaml", overrides)
    printed = io.StringIO()
    ctx = Context(cfg=cfg, run_dir=run_dir, console=Console(file=printed, width=200), out=tmp_path / "out")
    ctx.out.mkdir()
    with pytest.raises(CompressError) as caught:
        mobile.run(cfg, ctx)
    problems = caught.value.problems
    assert len(problems) == 2, problems
    assert re.search(r"model\.ort logits differ from .*model\.onnx by 0\.31 at batch 32 x length \d+ \(mobile\.atol 0\.0001\)",
                     problems[0]), problems
    assert "by 0.03 at batch 4 x length 32" in problems[1], problems
    lines = printed.getvalue().splitlines()
    assert sum(line.startswith("  [FAIL] batch 32 x") for line in lines) == 1
    assert sum(line.startswith("  [FAIL] batch 4 x") for line in lines) == 1
    assert sum(line.startswith("  [ok  ] batch 1 x") for line in lines) == 2


def test_operator_config_and_mobile_package_check(tmp_path, monkeypatch):
    from compress.tasks.classification import ort

    config = tmp_path / "ops.config"
    config.write_text("# generated\nai.onnx;13;Gather,Softmax\ncom.microsoft;1;Gelu{\"inputs\": {\"0\": [\"float\"]}}\n")
    ops = ort.read_operator_config(config)
    assert ops == {"ai.onnx": {"13": ["Gather", "Softmax"]}, "com.microsoft": {"1": ["Gelu"]}}
    assert ort.mobile_package(ops)["checked"] is False  # onnxruntime 1.31 ships no reduced package list

    import onnxruntime.tools.mobile_helpers.usability_checker as checker

    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "mobile_package.required_operators.config").write_text("ai.onnx;13;Gather,Softmax\n")
    monkeypatch.setattr(checker, "__file__", str(helpers / "usability_checker.py"))
    result = ort.mobile_package(ops)
    assert result == {"checked": True, "usable": False, "ops_not_in_package": ["com.microsoft:Gelu (opset 1)"]}


def test_parity_measures_of_identical_opposite_and_zero_rows():
    from compress.parity import compare

    a = np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 0.0]])
    b = np.array([[2.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    m = compare(a, b)
    # centred: [-.5, .5] . [-1, 1] + 0 + [.5, -.5] . [-.5, .5] = 1 - 0.5; norms sqrt(1) * sqrt(2.5)
    assert m["cosine"] == pytest.approx(0.5 / np.sqrt(2.5)) and m["max_abs_diff"] == 2.0
    assert m["top1_agreement"] == pytest.approx(2 / 3)  # [1, 0] vs [-1, 0] flips the top class
    assert compare(a, a) == {"max_abs_diff": 0.0, "top1_agreement": 1.0, "cosine": pytest.approx(1.0)}
    assert compare(a, -a)["cosine"] == pytest.approx(-1.0)
    assert compare(np.zeros((2, 2)), np.zeros((2, 2)))["cosine"] == 1.0
    # a common offset changes no probability: the centred cosine stays 1 where the raw one would be ~-1
    near = np.array([[-1.0, -1.1]])
    assert compare(near, near + 2.05)["cosine"] == pytest.approx(1.0)
    # three classes: the shape of the rows counts, not their offset or scale
    three = np.array([[3.0, 1.0, 0.0]])
    assert compare(three, 2 * three - 7)["cosine"] == pytest.approx(1.0)
    assert compare(three, np.array([[0.0, 1.0, 3.0]]))["cosine"] < 0
    # over the batch: one near-tie row whose top class flips barely moves it (row by row it would be -1)
    many = np.array([[2.0, -2.0]] * 31 + [[0.01, -0.01]])
    flipped = many.copy()
    flipped[-1] = [-0.01, 0.01]
    assert compare(many, flipped)["cosine"] > 0.999 and compare(many, flipped)["top1_agreement"] == pytest.approx(31 / 32)


def test_mobile_disabled_ships_and_verifies_without_model_ort(tiny_shipped, tmp_path):
    """On a copy of the shared run: only mobile, bench (its mobile target runs the model.ort), report and ship rerun."""
    run_dir, _, overrides = tiny_shipped
    shutil.copytree(run_dir.parent, tmp_path / "runs")
    changed = [o for o in overrides if not o.startswith("ship.dir=")]
    result = invoke("run", ROOT / "pipelines" / "tiny.yaml", "--runs-dir", tmp_path / "runs",
                    f"ship.dir={tmp_path / 'exports'}", "mobile.enabled=false", *changed)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    ran = {line.split()[1] for line in result.output.splitlines() if line.startswith("done ")}
    assert ran == {"mobile", "bench", "report", "ship"}
    int8 = next(v for v in read_json(tmp_path / "runs" / "tiny" / "report.json")["variants"] if v["name"] == "student-int8")
    assert int8["measurements"]["mobile@16"]["model_file"] == "model.onnx"  # no model.ort: the .onnx on one thread
    bundle = tmp_path / "exports" / "tiny"
    manifest = read_json(bundle / "manifest.json")
    assert "model.ort" not in manifest["files"] and not (bundle / "model.ort").exists()
    assert manifest["mobile"] == {"enabled": False}
    assert "ORT format" not in (tmp_path / "runs" / "tiny" / "report.md").read_text()
    verified = invoke("verify", bundle)
    assert verified.exit_code == 0, verified.output + (verified.stderr or "")
    assert "model.ort" not in verified.stdout and "-[ok] model.onnx: 8 golden texts" in verified.stdout
