"""The rows quantization is calibrated on and judged on: seeded, disjoint, identified by a hash.

Calibration rows come from the training split. Candidates are judged on held-out rows that are never
the evaluation split (the report's figures must not have been used to pick a setting):
``data.validation_split`` when there is one, else training rows that calibration never sees. Both
are cut from one seeded permutation of the training rows, calibration from the front and the
held-out rows from the back, so every static variant's sample (whatever its size) stays disjoint
from the held-out rows.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress import onnxrun
from compress.data import Split, train_split, validation_split
from compress.errors import CompressError

SEED_SALT = 7919  # the permutation differs from the training shuffle that used the same seed


@dataclass
class Held:
    """The held-out rows and where they came from (for the report)."""

    split: Split
    source: str  # "validation split 'validation'" or "training rows not used for calibration"


def permutation(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed + SEED_SALT).shuffle(order)
    return order


def calibration_split(train: Split, samples: int, seed: int) -> Split:
    """The first ``samples`` rows of the seeded permutation of the training rows."""
    if samples > len(train):
        raise CompressError(f"quantize: {samples} calibration sentences asked for, but the training split has "
                            f"{len(train)} rows; lower calibration.samples")
    idx = permutation(len(train), seed)[:samples]
    return Split(f"{train.name} (calibration)", [train.texts[i] for i in idx], [train.labels[i] for i in idx])


def held_out(cfg, train: Split | None, reserved: int) -> Held:
    """At most ``quantize.accuracy_samples`` rows no candidate was calibrated on, never the evaluation split."""
    limit = cfg.quantize.accuracy_samples
    val = validation_split(cfg)
    if val is not None:
        return Held(Split(val.name, val.texts[:limit], val.labels[:limit]), f"the first rows of validation split '{val.name}'")
    train = train or train_split(cfg)
    rest = permutation(len(train), cfg.seed)[reserved:]
    if not rest:
        raise CompressError(f"quantize: no training rows are left to measure accuracy on after {reserved} calibration "
                            f"rows; set data.validation_split or lower calibration.samples")
    idx = rest[-limit:]
    return Held(Split(f"{train.name} (held out)", [train.texts[i] for i in idx], [train.labels[i] for i in idx]),
                "training rows not used for calibration (data.validation_split is not set)")


def token_hash(rows: list[list[int]]) -> str:
    """sha256 of the token ids of every row (JSON list of lists): names a calibration sample exactly."""
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def input_names(path: Path) -> list[str]:
    """The graph inputs of an ONNX model (initializers excluded), read without loading the weights."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in inits]


def fixed_width_feeds(rows: list[list[int]], pad_id: int, names: list[str]) -> list[dict[str, np.ndarray]]:
    """One feed per row, every row padded to the longest: the histogram calibrators (entropy,
    percentile) stack the activations of all feeds, so all must have one shape."""
    width = max(len(r) for r in rows)
    feeds = []
    for row in rows:
        ids, mask = onnxrun.pad([row], pad_id)
        ids = np.pad(ids, ((0, 0), (0, width - ids.shape[1])), constant_values=pad_id)
        mask = np.pad(mask, ((0, 0), (0, width - mask.shape[1])))
        feeds.append(_named(names, ids, mask))
    return feeds


def _named(names: list[str], ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    known = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    missing = [n for n in names if n not in known]
    if missing:
        raise CompressError(f"quantize: unexpected model input(s) {missing} (expected input_ids, attention_mask, "
                            f"token_type_ids)")
    return {n: known[n] for n in names}


def reader(feeds: list[dict[str, np.ndarray]]):
    """An ONNX Runtime CalibrationDataReader over ``feeds`` (a fresh one per quantization)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    return _Reader()
