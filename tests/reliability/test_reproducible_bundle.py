"""Reproducible bundles: two clean runs of pipelines/tiny.yaml (the same config, each in its own working folder
with its own run and export folders, each in its own process) ship the same bytes, file by file, but for the
stated exceptions: README.md and manifest.json carry the figures the bench measured on this machine (latency,
speedup and its interval and flags, peak memory), and manifest.json the README's sha256. Every other file
(model.onnx, model.ort, golden.json, the tokenizer and config files) is byte-identical, and the two exceptions
differ in nothing else.

The quick tests pin the two sources of run-to-run bytes fixed at their source: the ORT converter's kernel type
string resolver (laid out in a hash map's order) and the safetensors header of torchao's int8 weights (its
metadata map written in a hash map's order)."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compress import ortformat

from ..conftest import ROOT, SHIPPED, default_sigint

TINY = ROOT / "pipelines" / "tiny.yaml"
# the files that carry what the bench measured, and what in them may differ between two runs
MEASURED_FILES = {"README.md", "manifest.json"}
MEASURED_METRICS = ("latency_ms", "speedup", "speedup_range", "speedup_flags", "flags", "peak_memory_bytes")
MEASURED_LINES = ("x the teacher's speed", "do not quote this speedup", "(the bench's mobile target")


def start(folder: Path) -> subprocess.Popen:
    """``compress run`` from ``folder``, with run and export folders relative to it: the config is the same."""
    folder.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "compress", "run", str(TINY), "--runs-dir", "runs",
                             "ship.dir=exports", *SHIPPED], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)


def differing(a: Path, b: Path) -> list[str]:
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    return [n for n in names if not ((a / n).is_file() and (b / n).is_file() and
                                     (a / n).read_bytes() == (b / n).read_bytes())]


def unmeasured_manifest(path: Path) -> dict:
    manifest = json.loads(path.read_text())
    for key in MEASURED_METRICS:
        manifest["metrics"].pop(key, None)
    manifest["files"].pop("README.md")
    return manifest


@pytest.mark.slow
def test_two_clean_runs_ship_the_same_bundle_but_for_the_measured_figures(tmp_path):
    runs = [start(tmp_path / name) for name in ("a", "b")]  # at once: two processes, as two machines would
    for run in runs:
        output, _ = run.communicate()
        assert run.returncode == 0, output[-3000:]
    a, b = (tmp_path / name / "exports" / "tiny" for name in ("a", "b"))
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    assert {"model.onnx", "model.ort", "golden.json", "tokenizer.json"} <= {p.name for p in a.iterdir()}
    differ = differing(a, b)
    assert set(differ) <= MEASURED_FILES, f"bundle files that differ between two clean runs: {differ}"
    assert unmeasured_manifest(a / "manifest.json") == unmeasured_manifest(b / "manifest.json")
    changed = [line[2:] for line in difflib.ndiff((a / "README.md").read_text().splitlines(),
                                                  (b / "README.md").read_text().splitlines())
               if line.startswith(("- ", "+ "))]
    assert all(any(mark in line for mark in MEASURED_LINES) for line in changed), changed
    manifest = json.loads((a / "manifest.json").read_text())
    assert "created" not in manifest  # the time a run was made is in its run folder, not in the bundle


# ----------------------------------------------------------------------------- the sources, fixed


@pytest.fixture(scope="module")
def ort_model(tiny_bert, tmp_path_factory):
    """A tiny BERT converted to ORT format the way the mobile stage converts it."""
    from compress.tasks.classification.ort import convert

    out = tmp_path_factory.mktemp("ort")
    path, _ = convert(tiny_bert / "onnx" / "model.onnx", out, "all", "fixed", "arm")
    return path


def test_an_ort_resolver_in_any_layout_is_written_in_one(ort_model):
    import onnxruntime as ort

    canonical = ort_model.read_bytes()
    assert ortformat.canonical_bytes(canonical) == canonical  # the stage wrote it canonical
    resolver = ortformat.resolver_of(canonical)
    assert len(resolver) > 3
    shuffled = [(op, list(reversed(args))) for op, args in reversed(resolver)]  # as another process lays it out
    scrambled = ortformat.rebuild(canonical, shuffled)
    assert scrambled != canonical
    assert ortformat.canonical_bytes(scrambled) == canonical
    feeds = {"input_ids": np.array([[2, 5, 7, 3]], dtype=np.int64), "attention_mask": np.ones((1, 4), dtype=np.int64),
             "token_type_ids": np.zeros((1, 4), dtype=np.int64)}
    outputs = [ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
               for data in (canonical, scrambled)]
    assert np.array_equal(*outputs)


def test_an_ort_file_that_is_not_one_is_refused_by_name(tmp_path):
    from compress.errors import CompressError

    path = tmp_path / "model.ort"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CompressError, match=r"model.ort: not an ORT-format model"):
        ortformat.canonicalize(path)


def test_safetensors_metadata_is_written_in_one_order():
    import safetensors.torch
    import torch

    from compress.quant.torch_int8 import sorted_header

    tensors = {f"layer.{i}.weight": torch.arange(6, dtype=torch.int8).reshape(2, 3) + i for i in range(8)}
    metadata = {name: json.dumps({"_type": "Tensor", "i": i}) for i, name in enumerate(tensors)}
    saved = []
    for keys in (list(metadata), list(reversed(metadata))):
        data = safetensors.torch.save(tensors, metadata={k: metadata[k] for k in keys})
        saved.append(sorted_header(data))
    assert saved[0] == saved[1]
    assert len(saved[0]) % 8 == 0 and int.from_bytes(saved[0][:8], "little") % 8 == 0
    loaded = safetensors.torch.load(saved[0])
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
    size = int.from_bytes(saved[0][:8], "little")
    assert json.loads(saved[0][8:8 + size])["__metadata__"] == metadata
