"""Checks the export and quantize stages of a causal LM share: logits parity at several lengths (with and
without the KV cache) and greedy tokens against PyTorch's generate on held-out prompts."""

from __future__ import annotations

import numpy as np

from compress.errors import CompressError
from compress.parity import compare, print_checklist
from compress.tasks.causal_lm import onnxlm
from compress.tasks.causal_lm.text import prompts, token_stream

PROMPT_TOKENS = 16  # tokens of each greedy / side-by-side prompt


def parity_inputs(tokenizer, held_out: str, max_length: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, ids, mask) from the held-out text: two rows at each of several lengths, and a batch whose second
    row is right-padded (the padded positions are masked out of the comparison)."""
    stream = token_stream(tokenizer, held_out)
    lengths = sorted({n for n in (8, 32, max_length) if n <= max_length and 2 * n <= len(stream)})
    if not lengths:
        raise CompressError(f"export: the held-out text has {len(stream)} tokens, too few for the parity checks")
    out = []
    for n in lengths:
        ids = np.asarray([stream[:n], stream[n : 2 * n]], dtype=np.int64)
        out.append((f"batch 2 x length {n}", ids, np.ones_like(ids)))
    n = lengths[-1]
    ids = np.asarray([stream[:n], stream[n : 2 * n]], dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, n // 2 :] = 0
    ids[1, n // 2 :] = tokenizer.pad_token_id
    out.append((f"batch 2 x length {n}, second row padded to it", ids, mask))
    return out


def compare_rows(variant: str, shape: str, ref: np.ndarray, got: np.ndarray, mask: np.ndarray, atol: float | None) -> dict:
    """One parity row over the unpadded positions: max |diff|, top-1 agreement, cosine of the centred logits."""
    keep = mask.astype(bool)
    m = compare(ref[keep], got[keep])
    problems = [f"logits differ by {m['max_abs_diff']:.3g} (atol {atol:g})"] if atol is not None and not m["max_abs_diff"] <= atol else []
    return {"variant": variant, "shape": shape, **m, "tolerance": f"atol {atol:g}" if atol is not None else "reported only",
            "ok": not problems, "problems": problems}


def logits_parity(variant: str, dec: onnxlm.Decoder, inputs, reference, atol: float | None) -> list[dict]:
    """Full-sequence logits at every input (an empty cache), then the last 4 tokens fed through the KV cache
    after the others: the path generation takes."""
    rows = []
    for (name, ids, mask), ref in zip(inputs, reference):
        rows.append(compare_rows(variant, name, ref, dec.logits(ids, mask), mask, atol))
    name, ids, mask = next(x for x in inputs[::-1] if x[2].all())
    ref = reference[[x[0] for x in inputs].index(name)]
    k = min(4, ids.shape[1] - 1)
    _, past = dec.step(ids[:, :-k], mask[:, :-k])
    got, _ = dec.step(ids[:, -k:], mask, past)
    rows.append(compare_rows(variant, f"{name.split(',')[0]}, last {k} through the KV cache", ref[:, -k:], got,
                             mask[:, -k:], atol))
    return rows


def print_rows(ctx, title: str, rows: list[dict]) -> None:
    print_checklist(ctx.console, title, rows)


def greedy_check(cfg, model, tok, dec, held_out: str) -> list[dict]:
    out = []
    eos = tok.eos_token_id
    for ids in prompts(tok, held_out, cfg.export.greedy_prompts, PROMPT_TOKENS):
        want = onnxlm.torch_greedy(model, ids, cfg.export.greedy_tokens, eos, tok.pad_token_id)
        got = dec.greedy(ids, cfg.export.greedy_tokens, eos)
        first = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), None if len(want) == len(got) else min(len(want), len(got)))
        out.append({"prompt": tok.decode(ids), "torch": want, "onnx": got, "equal": want == got, "first_difference": first})
    return out
