"""compress verify on a causal-LM bundle: each golden prompt's next-token logits, and its greedy continuation
through the KV cache, replayed with numpy and onnxruntime alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.layout import GOLDEN_FILE
from compress.records import Check, Manifest
from compress.tasks.causal_lm.onnxlm import Decoder  # numpy and onnxruntime only

# How far a replayed next-token logit may be from golden.json; the greedy tokens must be the same, token for token.
# Fixed here, never read from a bundle (compress/tasks/classification/golden.py says why).
TOLERANCE = {"logits": 1e-3}


def tolerance() -> dict[str, float]:
    return dict(TOLERANCE)


def check_decoder(bundle: Path, name: str, golden: dict, manifest: Manifest) -> Check:
    """A causal LM: each golden prompt's next-token logits (empty KV cache) within the tolerance, and its greedy
    continuation through the KV cache token for token."""
    atol = TOLERANCE["logits"]
    try:
        dec = Decoder(bundle / name)
    except Exception as exc:  # onnxruntime's load errors have no common base class; ValueError: no cache inputs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check(name, "cannot be loaded", f"{name}: cannot be loaded as a decoder with a KV cache ({first[:200]})")
    worst, bad, differ = 0.0, 0, []
    for i, s in enumerate(golden["samples"]):
        ids = np.asarray([s["input_ids"]], dtype=np.int64)
        try:
            got = dec.logits(ids, np.ones_like(ids))[0, -1]
            tokens = dec.greedy(s["input_ids"], int(golden["new_tokens"]), golden.get("eos_token_id"))
        except Exception as exc:  # a corrupted graph may load and still fail to run
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Check(name, "fails to run", f"{name}: fails on golden prompt {i} ({first[:200]})")
        diff = float(np.abs(got - np.asarray(s["logits"], dtype=np.float32)).max())
        worst, bad = max(worst, diff), bad + (diff > atol)
        if tokens != s.get("greedy_tokens"):
            differ.append(i)
    n = len(golden["samples"])
    detail = (f"{n} golden prompts, next-token logits max diff {worst:.2e} (tolerance {atol:g}), greedy continuations "
              f"identical on {n - len(differ)}/{n}")
    if not bad and not differ:
        return Check(name, detail)
    return Check(name, detail, f"{name}: " + "; ".join(
        ([f"logits differ from {GOLDEN_FILE} by up to {worst:.3g} (tolerance {atol:g}) on {bad} of {n} prompts"] if bad else [])
        + ([f"greedy tokens differ from {GOLDEN_FILE} on prompts {differ}"] if differ else [])))
