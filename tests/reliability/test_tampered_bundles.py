"""Tampered bundles: compress verify and the bundle loader (compress.verify.load_bundle) refuse a bundle
whose files do not match manifest.json, naming the file; nothing of a refused bundle is loaded. Paths outside the
bundle, links, a loosened tolerance, re-hashed models and signatures: test_bundle_integrity.py and
test_bundle_signing.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from compress.errors import CompressError
from compress.verify import load_bundle

from ..conftest import invoke, read_json

KINDS = ["flip-one-byte", "truncate", "append", "delete", "replace-with-empty"]


def copy_bundle(bundle, tmp_path, name="b"):
    return shutil.copytree(bundle, tmp_path / name)


def tamper(path, kind):
    data = path.read_bytes()
    if kind == "flip-one-byte":
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:])
    elif kind == "truncate":
        path.write_bytes(data[: len(data) - max(1, len(data) // 3)])
    elif kind == "append":
        path.write_bytes(data + b"\n")
    elif kind == "delete":
        path.unlink()
    else:
        path.write_bytes(b"")


def test_a_fresh_bundle_loads_and_gives_its_golden_logits(tiny_shipped):
    _, bundle, _ = tiny_shipped
    model = load_bundle(bundle)
    golden = read_json(bundle / "golden.json")
    logits = model.logits([s["text"] for s in golden["samples"]])
    want = np.asarray([s["logits"] for s in golden["samples"]], dtype=np.float32)
    assert np.abs(logits - want).max() <= golden["atol"]
    assert model.labels == {0: "LABEL_0", 1: "LABEL_1"}  # the generated task's integer labels, unnamed
    rows = model.predict([s["text"] for s in golden["samples"]])
    assert [r.label for r in rows] == [s["predicted"] for s in golden["samples"]]
    assert load_bundle(bundle, "model.ort").logits(["a good film"]).shape == (1, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_every_tampered_file_is_named_by_verify_and_the_loader(tiny_shipped, tmp_path, kind):
    _, bundle, _ = tiny_shipped
    names = sorted(read_json(bundle / "manifest.json")["files"])
    assert {"model.onnx", "model.ort", "tokenizer.json", "golden.json", "README.md"} <= set(names)
    for name in names:
        copy = copy_bundle(bundle, tmp_path, f"{kind}-{name}")
        tamper(copy / name, kind)
        result = invoke("verify", copy)
        assert result.exit_code == 2, (name, kind, result.output)
        errors = result.stderr.strip().splitlines()
        # the file's own line first; the golden replay may add lines, each naming it too ("differ from golden.json")
        assert errors and errors[0].startswith(f"error: {name}:") and all(name in e for e in errors), (name, kind, errors)
        assert "Traceback" not in result.output + result.stderr
        with pytest.raises(CompressError) as info:
            load_bundle(copy)  # the same checks, golden replay included: the same lines
        problems = info.value.problems
        assert problems == [e.removeprefix("error: ") for e in errors], (problems, errors)


def test_an_unlisted_file_is_refused(tiny_shipped, tmp_path):
    _, bundle, _ = tiny_shipped
    copy = copy_bundle(bundle, tmp_path)
    (copy / "extra.onnx").write_bytes(b"not listed")
    result = invoke("verify", copy)
    assert result.exit_code == 2
    assert "error: extra.onnx: in" in result.stderr and "but not listed in manifest.json" in result.stderr
    with pytest.raises(CompressError, match="extra.onnx: in .* not listed in manifest.json"):
        load_bundle(copy)


def test_a_manifest_that_lies_about_a_hash_is_refused(tiny_shipped, tmp_path):
    _, bundle, _ = tiny_shipped
    copy = copy_bundle(bundle, tmp_path)
    manifest = read_json(copy / "manifest.json")
    manifest["files"]["tokenizer.json"]["sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CompressError, match=r"^tokenizer.json: sha256 [0-9a-f]{64} differs from manifest.json"):
        load_bundle(copy)
    assert invoke("verify", copy).exit_code == 2


@pytest.mark.parametrize("damage", ["truncated", "not-json", "no-files", "deleted"])
def test_a_damaged_manifest_is_named(tiny_shipped, tmp_path, damage):
    _, bundle, _ = tiny_shipped
    copy = copy_bundle(bundle, tmp_path)
    path = copy / "manifest.json"
    text = path.read_text()
    {"truncated": lambda: path.write_text(text[: len(text) // 2]), "not-json": lambda: path.write_text("\x00\x01"),
     "no-files": lambda: path.write_text('{"name": "tiny"}'), "deleted": path.unlink}[damage]()
    result = invoke("verify", copy)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {path}:"), result.stderr
    with pytest.raises(CompressError, match="manifest.json"):
        load_bundle(copy)


def test_a_folder_that_is_not_a_bundle(tmp_path):
    result = invoke("verify", tmp_path / "nothing")
    assert result.exit_code == 2 and "not a folder" in result.stderr
    with pytest.raises(CompressError, match="not a folder"):
        load_bundle(tmp_path / "nothing")
