"""A bundle that cannot lie (issue 27): a manifest that lists files outside the bundle, symbolic links, a bundle
that loosens its own golden tolerance, a model swapped and re-hashed: compress verify and load_bundle refuse each,
naming the file, and nothing outside the bundle is opened on the way."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest

from compress import onnxrun, tasks
from compress.errors import CompressError
from compress.verify import load_bundle

from ..conftest import invoke, read_json


def copy_bundle(tiny_shipped, tmp_path) -> Path:
    _, bundle, _ = tiny_shipped
    return shutil.copytree(bundle, tmp_path / "bundle")


def rehash(bundle: Path, name: str, path: Path | None = None) -> None:
    """List ``name`` in manifest.json with the sha256 and size of ``path`` (default: the bundle's file): what an
    attacker who can write the manifest does."""
    manifest = read_json(bundle / "manifest.json")
    data = Path(path or bundle / name).read_bytes()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))


def shift_logits(path: Path, by: float = 0.5) -> None:
    """Rewrite an ONNX classifier so that it adds ``by`` to every logit: it loads, runs and computes otherwise."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["logits_raw" if o == "logits" else o for o in node.output]
    graph.initializer.append(helper.make_tensor("shift", TensorProto.FLOAT, [], [by]))
    graph.node.append(helper.make_node("Add", ["logits_raw", "shift"], ["logits"]))
    onnx.save(model, str(path))


@pytest.fixture
def opened(monkeypatch, tmp_path):
    """Every file under tmp_path the checks open: Python's own opens (an audit hook), and the paths handed to the
    tokenizers library and to ONNX Runtime (native code, which the hook does not see). Resolved, links followed."""
    import tokenizers

    seen: list[Path] = []
    root = tmp_path.resolve()

    def record(path) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            resolved = Path(os.fsdecode(path)).resolve()
            if resolved.is_relative_to(root):
                seen.append(resolved)

    _HOOK["record"] = record
    monkeypatch.setattr(tokenizers, "Tokenizer", _Recording(tokenizers.Tokenizer, record))
    real_session = onnxrun.session
    monkeypatch.setattr(onnxrun, "session", lambda path, *a, **k: (record(path), real_session(path, *a, **k))[1])
    yield seen
    _HOOK["record"] = None


_HOOK: dict = {"record": None}


def _audit(event, args):
    if event == "open" and _HOOK["record"] is not None:
        _HOOK["record"](args[0])


sys.addaudithook(_audit)  # cannot be removed: it records only while the fixture above is active


class _Recording:
    def __init__(self, real, record):
        self.real, self.record = real, record

    def from_file(self, path, *args, **kwargs):
        self.record(path)
        return self.real.from_file(path, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def refused(bundle: Path, name: str, says: str) -> list[str]:
    """verify exits 2 with a line that starts with ``name`` and says ``says``; load_bundle raises the same line.
    Returns verify's error lines."""
    result = invoke("verify", bundle)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    errors = [e.removeprefix("error: ") for e in result.stderr.strip().splitlines()]
    assert any(e.startswith(f"{name}:") and says in e for e in errors), errors
    with pytest.raises(CompressError) as info:
        load_bundle(bundle)
    assert any(p.startswith(f"{name}:") and says in p for p in info.value.problems), info.value.problems
    return errors


# ----------------------------------------------------------------------------- paths in the manifest


@pytest.mark.parametrize("form", ["../outside.txt", "absolute", "..\\outside.txt", "C:/outside.txt"])
def test_a_manifest_path_outside_the_bundle_is_refused_and_never_opened(tiny_shipped, tmp_path, opened, form):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("a file beside the bundle, listed with its right sha256\n")
    name = str(outside.resolve()) if form == "absolute" else form
    rehash(bundle, name, outside)
    says = {"../outside.txt": "leads out of the bundle folder ('..')", "absolute": "an absolute path",
            "..\\outside.txt": "not a plain relative path", "C:/outside.txt": "an absolute path"}[form]
    opened.clear()  # what the test itself read so far
    errors = refused(bundle, name, says)
    assert len(errors) == 1, errors  # the rest of the bundle is intact: only that entry is named
    assert outside.resolve() not in opened, opened
    assert all(p.is_relative_to(bundle.resolve()) for p in opened), opened


def test_a_non_printable_manifest_name_is_shown_escaped(tiny_shipped, tmp_path):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    rehash(bundle, "README.md\nerror: all good", bundle / "README.md")
    result = invoke("verify", bundle)
    assert result.exit_code == 2
    assert "error: 'README.md\\nerror: all good': not a printable file name" in result.stderr, result.stderr


# ----------------------------------------------------------------------------- symbolic links


def test_a_symlinked_tokenizer_is_refused_even_with_the_right_hash(tiny_shipped, tmp_path, opened):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    target = tmp_path / "tokenizer.json"
    shutil.copyfile(bundle / "tokenizer.json", target)  # the same bytes: the manifest's sha256 matches
    (bundle / "tokenizer.json").unlink()
    (bundle / "tokenizer.json").symlink_to(target)
    opened.clear()
    errors = refused(bundle, "tokenizer.json", "a symbolic link (to ")
    assert len(errors) == 1, errors
    assert target.resolve() not in opened, opened  # neither hashed nor handed to the tokenizers library
    assert all(p.is_relative_to(bundle.resolve()) for p in opened), opened


def test_a_listed_file_behind_a_symlinked_folder_is_refused(tiny_shipped, tmp_path, opened):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("outside\n")
    (bundle / "extra").symlink_to(elsewhere, target_is_directory=True)
    rehash(bundle, "extra/notes.txt", elsewhere / "notes.txt")
    opened.clear()
    refused(bundle, "extra", "a symbolic link")
    assert (elsewhere / "notes.txt").resolve() not in opened


@pytest.mark.parametrize("target", ["a file", "a folder", "a missing path"])
def test_an_unlisted_symlink_is_refused(tiny_shipped, tmp_path, target):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    pointed = {"a file": bundle / "README.md", "a folder": tmp_path, "a missing path": tmp_path / "nothing"}[target]
    (bundle / "link").symlink_to(pointed)
    refused(bundle, "link", "a symbolic link")


def test_a_symlinked_manifest_is_refused(tiny_shipped, tmp_path):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    shutil.move(bundle / "manifest.json", tmp_path / "manifest.json")
    (bundle / "manifest.json").symlink_to(tmp_path / "manifest.json")
    result = invoke("verify", bundle)
    assert result.exit_code == 2 and "manifest.json: a symbolic link" in result.stderr, result.stderr
    with pytest.raises(CompressError, match="manifest.json: a symbolic link"):
        load_bundle(bundle)


def test_an_unlisted_empty_folder_is_refused(tiny_shipped, tmp_path):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    (bundle / "hidden").mkdir()
    refused(bundle, "hidden/", "a folder")


# ----------------------------------------------------------------------------- the golden tolerance


def test_the_tolerance_is_the_verifiers_and_the_bundle_says_the_same(tiny_shipped):
    _, bundle, _ = tiny_shipped
    fixed = tasks.get("sequence-classification").hook("golden_tolerance")()
    assert fixed == {"logits": 1e-3}
    written = read_json(bundle / "golden.json")["atol"], read_json(bundle / "manifest.json")["golden"]["atol"]
    assert written == (fixed["logits"], fixed["logits"])  # for readers; never what the replay uses
    assert tasks.get("causal-lm").hook("golden_tolerance")() == {"logits": 1e-3}


def test_a_loosened_tolerance_rehashed_fails(tiny_shipped, tmp_path):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    golden = read_json(bundle / "golden.json")
    golden["atol"] = 1e9
    (bundle / "golden.json").write_text(json.dumps(golden))
    rehash(bundle, "golden.json")
    errors = refused(bundle, "golden.json", "may differ by 1e+09, but compress verify holds sequence-classification "
                     "logits to 0.001")
    assert len(errors) == 1, errors  # the model itself is intact


def test_a_loosened_tolerance_does_not_let_a_changed_model_through(tiny_shipped, tmp_path):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    golden = read_json(bundle / "golden.json")
    golden["atol"] = 1e9
    (bundle / "golden.json").write_text(json.dumps(golden))
    shift_logits(bundle / "model.onnx")
    rehash(bundle, "golden.json")
    rehash(bundle, "model.onnx")
    errors = refused(bundle, "model.onnx", "logits differ from golden.json by up to 0.5 (tolerance 0.001)")
    assert any(e.startswith("golden.json: says the golden logits may differ by 1e+09") for e in errors), errors


def test_a_loosened_tolerance_in_the_manifest_fails(tiny_shipped, tmp_path):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    manifest = read_json(bundle / "manifest.json")
    manifest["golden"]["atol"] = 10  # the manifest is not hashed: no re-hash needed
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    refused(bundle, "manifest.json", "may differ by 10, but compress verify holds")


def test_ship_golden_atol_is_refused_at_load():
    result = invoke("validate", Path(__file__).parents[2] / "pipelines" / "tiny.yaml", "ship.golden_atol=0.5")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ship.golden_atol: no longer a setting"), result.stderr


# ----------------------------------------------------------------------------- load_bundle replays the golden set


def test_load_bundle_refuses_a_rehashed_tampered_model(tiny_shipped, tmp_path, caplog):
    bundle = copy_bundle(tiny_shipped, tmp_path)
    shift_logits(bundle / "model.onnx")
    rehash(bundle, "model.onnx")
    with pytest.raises(CompressError) as info:
        load_bundle(bundle)
    assert info.value.problems == [info.value.problems[0]] and info.value.problems[0].startswith(
        "model.onnx: logits differ from golden.json by up to 0.5 (tolerance 0.001) on 8 of 8 golden texts")
    with caplog.at_level(logging.WARNING, logger="compress.verify"):
        model = load_bundle(bundle, replay_golden=False)  # the opt-out: the files are checked, the replay is not
    assert model.logits(["a good film"]).shape == (1, 2)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "golden replay skipped (replay_golden=False)" in warned[0], warned
    assert "a model changed and re-hashed there is not caught" in warned[0]
    (bundle / "model.onnx").write_bytes(b"changed, not re-hashed")
    with pytest.raises(CompressError, match="^model.onnx: 22 bytes, manifest.json says .*: the file was changed"):
        load_bundle(bundle, replay_golden=False)  # the file check is not skipped


def test_load_bundle_refuses_a_rehashed_tampered_tokenizer(tiny_shipped, tmp_path):
    """Two words of the vocabulary swap ids: the same model then reads other sentences."""
    bundle = copy_bundle(tiny_shipped, tmp_path)
    tokenizer = read_json(bundle / "tokenizer.json")
    vocab = tokenizer["model"]["vocab"]
    first = read_json(bundle / "golden.json")["samples"][0]
    words = [w for w, i in vocab.items() if i in first["input_ids"] and not w.startswith("[")][:2]
    assert len(words) == 2, first
    vocab[words[0]], vocab[words[1]] = vocab[words[1]], vocab[words[0]]
    (bundle / "tokenizer.json").write_text(json.dumps(tokenizer))
    rehash(bundle, "tokenizer.json")
    refused(bundle, "tokenizer.json", "golden texts give other token ids than golden.json")


def test_load_bundle_passes_the_golden_replay_of_a_fresh_bundle(tiny_shipped, caplog):
    _, bundle, _ = tiny_shipped
    with caplog.at_level(logging.WARNING, logger="compress.verify"):
        model = load_bundle(bundle)
    assert not caplog.records  # no warning when nothing is skipped
    golden = read_json(bundle / "golden.json")
    assert [r.label for r in model.predict([s["text"] for s in golden["samples"]])] == \
        [s["predicted"] for s in golden["samples"]]
