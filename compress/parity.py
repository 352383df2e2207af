"""Parity: a transformed model against its fp32 PyTorch parent, on real inputs at several shapes.

Optimum only warns when an exported model disagrees with PyTorch (optimum #978, #1755), and
dynamic axes silently fixed to the dummy shape show up only at another shape (pytorch #110347).
Every transformation (export, graph optimization, each quantization, ORT format) is compared
here with the PyTorch parent's logits at the same inputs:

- ``batch N x length L``: N evaluation sentences padded to the longest of them;
- ``batch 1 x length l``: one sentence alone, no padding;
- ``batch 1 x length S``: one sentence padded to the benchmark's sequence length S;
- ``batch 4 x length S``: four sentences, each padded to S.

Each check gives the largest absolute logit difference, the top-1 agreement and the cosine
similarity of the batch's centred logits (softmax ignores a row's common offset); a ``Tolerance`` says
which of them bound a transformation. Imports
numpy and onnxruntime only: torch is needed just for the reference logits (``torch_reference``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress import onnxrun


@dataclass(frozen=True)
class Shape:
    name: str
    input_ids: np.ndarray
    attention_mask: np.ndarray


@dataclass(frozen=True)
class Tolerance:
    """Bounds a check must keep; None leaves a measure unbounded (reported, not gated)."""

    atol: float | None = None
    min_top1: float | None = None
    min_cosine: float | None = None

    def describe(self) -> str:
        parts = [f"atol {self.atol:g}" if self.atol is not None else "",
                 f"top-1 >= {self.min_top1:.0%}" if self.min_top1 is not None else "",
                 f"cosine >= {self.min_cosine:g}" if self.min_cosine is not None else ""]
        return ", ".join(p for p in parts if p) or "reported only"


def shapes(tokenizer, texts: list[str], long_length: int) -> list[Shape]:
    """The inputs every check runs at, from real sentences (at least one)."""
    if not texts:
        raise ValueError("parity needs at least one sentence")
    rows = tokenizer(texts, truncation=True, max_length=long_length)["input_ids"]
    pad = tokenizer.pad_token_id
    ids, mask = onnxrun.pad(rows, pad)
    first = rows[0]
    out = [Shape(f"batch {ids.shape[0]} x length {ids.shape[1]}", ids, mask),
           Shape(f"batch 1 x length {len(first)}", ids[:1, : len(first)], mask[:1, : len(first)])]
    if long_length > ids.shape[1]:
        few = rows[:4]
        long_ids = np.full((len(few), long_length), pad, dtype=np.int64)
        long_mask = np.zeros((len(few), long_length), dtype=np.int64)
        for r, row in enumerate(few):
            long_ids[r, : len(row)], long_mask[r, : len(row)] = row, 1
        out.append(Shape(f"batch 1 x length {long_length}", long_ids[:1], long_mask[:1]))
        if len(few) > 1:
            out.append(Shape(f"batch {len(few)} x length {long_length}", long_ids, long_mask))
    return out


def torch_reference(model, inputs: list[Shape]) -> list[np.ndarray]:
    """The fp32 PyTorch logits at every shape: what each transformation is held to."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for s in inputs:
            logits = model(input_ids=torch.from_numpy(s.input_ids), attention_mask=torch.from_numpy(s.attention_mask)).logits
            out.append(logits.float().numpy())
    return out


def onnx_outputs(path: Path, inputs: list[Shape], providers: list[str] | None = None) -> list[np.ndarray]:
    sess = onnxrun.session(path, providers=providers)
    return [sess.run(["logits"], onnxrun.feeds(sess, s.input_ids, s.attention_mask))[0].astype(np.float32)
            for s in inputs]


def compare(reference: np.ndarray, got: np.ndarray) -> dict:
    """Largest absolute logit difference, top-1 agreement, and the cosine similarity of the *centred*
    logits of the whole batch (each row minus its mean, all rows together). Softmax ignores a common
    offset of a row's logits, so the cosine does too: int8 that moves both logits of a two-class row by +2
    and keeps their difference gives the same probabilities. Taken over the batch rather than row by row,
    because a row's centred cosine with two classes is only ever +1 or -1: the smallest one would fail a
    whole variant for one near-tie sentence whose top class flips, which top-1 agreement already counts."""
    ref, got = reference.astype(np.float64), got.astype(np.float64)
    rc, gc = ref - ref.mean(-1, keepdims=True), got - got.mean(-1, keepdims=True)
    den = float(np.linalg.norm(rc) * np.linalg.norm(gc))
    cosine = float((rc * gc).sum() / den) if den > 0 else float(np.array_equal(rc, gc))
    return {"max_abs_diff": float(np.abs(ref - got).max()),
            "top1_agreement": float((ref.argmax(-1) == got.argmax(-1)).mean()),
            "cosine": cosine}


def check(name: str, inputs: list[Shape], reference: list[np.ndarray], got: list[np.ndarray],
          tolerance: Tolerance) -> list[dict]:
    """One row per shape: the measures, the tolerance, ok or the reasons it is not."""
    rows = []
    for s, ref, out in zip(inputs, reference, got):
        if ref.shape != out.shape:
            m = {"max_abs_diff": float("inf"), "top1_agreement": 0.0, "cosine": -1.0}
            problems = [f"output shape {out.shape} instead of {ref.shape}"]
        else:
            m = compare(ref, out)
            problems = []
            if tolerance.atol is not None and not m["max_abs_diff"] <= tolerance.atol:
                problems.append(f"logits differ by {m['max_abs_diff']:.3g} (atol {tolerance.atol:g})")
            if tolerance.min_top1 is not None and m["top1_agreement"] < tolerance.min_top1:
                problems.append(f"top-1 agreement {m['top1_agreement']:.1%} (at least {tolerance.min_top1:.0%})")
            if tolerance.min_cosine is not None and m["cosine"] < tolerance.min_cosine:
                problems.append(f"cosine {m['cosine']:.4f} (at least {tolerance.min_cosine:g})")
        rows.append({"variant": name, "shape": s.name, **m, "tolerance": tolerance.describe(),
                     "ok": not problems, "problems": problems})
    return rows


def print_checklist(console, title: str, rows: list[dict]) -> None:
    """The title, the bounds every row is held to (one line: they are the same for all), then one line per shape
    that fits an 80-column terminal: ``  [ok  ] batch 32 x length 16   max diff 3.58e-07  top-1 100.0%  cos 1.000000``."""
    from rich.markup import escape

    console.print(f"parity: {escape(title)}", soft_wrap=True)
    bounds = dict.fromkeys(r["tolerance"] for r in rows)  # one Tolerance per checklist; in order if ever several
    if bounds:
        console.print(f"  bounds: {escape('; '.join(bounds))}", soft_wrap=True)
    for r in rows:
        mark = "[green]ok[/]  " if r["ok"] else "[red]FAIL[/]"
        console.print(f"  [{mark}] {escape(r['shape']):<21} max diff {r['max_abs_diff']:.2e}  "
                      f"top-1 {r['top1_agreement']:>6.1%}  cos {r['cosine']:.6f}", soft_wrap=True)


def failures(rows: list[dict], what: str, path: Path | str) -> list[str]:
    """One error line per failed check, naming the variant, the shape and the difference."""
    return [f"{what}: {r['variant']} at {r['shape']}: {'; '.join(r['problems'])}; {path}" for r in rows if not r["ok"]]


def save_reference(path: Path, inputs: list[Shape], reference: list[np.ndarray]) -> None:
    arrays = {"names": np.array([s.name for s in inputs])}
    for i, (s, ref) in enumerate(zip(inputs, reference)):
        arrays[f"ids{i}"], arrays[f"mask{i}"], arrays[f"ref{i}"] = s.input_ids, s.attention_mask, ref
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_reference(path: Path) -> tuple[list[Shape], list[np.ndarray]]:
    """The inputs and fp32 PyTorch logits saved by the export stage."""
    with np.load(path) as z:
        names = [str(n) for n in z["names"]]
        inputs = [Shape(n, z[f"ids{i}"], z[f"mask{i}"]) for i, n in enumerate(names)]
        return inputs, [z[f"ref{i}"] for i in range(len(names))]
