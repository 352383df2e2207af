"""compress verify on a classifier bundle: the golden sentences' stored ids through a model file, one sentence
at a time, the logits against golden.json (numpy and onnxruntime only), within a tolerance fixed here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress import onnxrun
from compress.errors import CompressError
from compress.layout import GOLDEN_FILE, MANIFEST_FILE
from compress.records import Check, Manifest

# How far a replayed logit may be from golden.json. Fixed here, never read from a bundle: a bundle that could set
# its own tolerance could pass any model. The ship stage computes golden.json with ONNX Runtime's CPU execution
# provider; replayed by the same onnxruntime on the same machine the logits come out identical (max diff 0 on the
# tiny pipeline's int8 model.onnx and model.ort). 1e-3, the default the bundle's own setting had, leaves room for
# another CPU or onnxruntime version rounding an int8 kernel otherwise, and refuses a model that computes
# otherwise (tests/reliability/test_bundle_integrity.py moves the logits by 0.5; one changed embedding byte in
# tests/test_bundle.py is caught too). Should a device need more, it is raised here, in code, for every bundle.
TOLERANCE = {"logits": 1e-3}


def tolerance() -> dict[str, float]:
    return dict(TOLERANCE)


def check_model(bundle: Path, name: str, golden: dict, manifest: Manifest) -> Check:
    """Run the stored ids through ``name`` one sentence at a time; logits within the task's fixed tolerance (an
    output it has none for was refused by compress/verify.py's check_tolerance)."""
    output = golden.get("output", "logits")
    atol = TOLERANCE.get(output, 0.0)
    try:
        sess = onnxrun.session(bundle / name)
    except CompressError as exc:  # a damaged graph: the line names the file, as the bundle lists it
        return Check(name, "cannot be loaded", exc.problems[0].replace(str(bundle / name), name, 1))
    expected_inputs = [t.name for t in manifest.inputs]
    found_inputs = [i.name for i in sess.get_inputs()]
    if expected_inputs and found_inputs != expected_inputs:
        return Check(name, f"inputs {found_inputs}", f"{name}: inputs {found_inputs}, {MANIFEST_FILE} says {expected_inputs}")
    worst, worst_i, bad, top1 = -1.0, 0, 0, 0
    for i, s in enumerate(golden["samples"]):
        ids = np.asarray([s["input_ids"]], dtype=np.int64)
        mask = np.asarray([s["attention_mask"]], dtype=np.int64)
        try:
            got = sess.run([output], onnxrun.feeds(sess, ids, mask))[0][0]
        except Exception as exc:  # a corrupted graph may load and still fail to run
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Check(name, "fails to run", f"{name}: fails on golden text {i} ({first[:200]})")
        want = np.asarray(s["logits"], dtype=np.float32)
        if got.shape != want.shape:
            return Check(name, f"output shape {got.shape}", f"{name}: {output} of golden text {i} has shape {got.shape}, "
                         f"{GOLDEN_FILE} has {want.shape}")
        diff = float(np.abs(got - want).max())
        bad += diff > atol
        top1 += int(got.argmax() == want.argmax())
        if diff > worst:
            worst, worst_i = diff, i
    n = len(golden["samples"])
    detail = f"{n} golden texts, {output} max diff {worst:.2e} (tolerance {atol:g}), top-1 {top1}/{n}"
    if not bad:
        return Check(name, detail)
    text = golden["samples"][worst_i]["text"]
    return Check(name, detail, f"{name}: {output} differ from {GOLDEN_FILE} by up to {worst:.3g} (tolerance {atol:g}) "
                 f"on {bad} of {n} golden texts, worst text {worst_i} ({text[:50]!r})")
