"""WikiText-2 perplexity and bits per byte of a causal LM, as lm-evaluation-harness's rolling windows without
overlap: the text's first tokens in windows that each start with the end-of-text token, so that every token of the
text is predicted once (the score stage, benchmarks/llm_kd_vs_ce.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from compress.errors import CompressError
from compress.tasks.causal_lm import onnxlm, zeroshot


def read_wikitext(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CompressError(f"scores.wikitext: {path} cannot be read ({exc})") from None


def windows(tokenizer, text: str, max_tokens: int | None, window: int) -> tuple[list[list[int]], int]:
    """(windows of token ids, the UTF-8 bytes of the text they cover): the text's first ``max_tokens`` tokens
    (tokenized line by line), each window the end-of-text token and then ``window - 1`` tokens of the text, so that every
    token of the text is predicted once."""
    ids: list[int] = []
    nbytes = 0
    for line in text.splitlines(keepends=True):
        part = tokenizer(line, add_special_tokens=False)["input_ids"]
        if max_tokens is not None and len(ids) + len(part) > max_tokens:  # the line's first tokens, and their bytes
            part = part[: max_tokens - len(ids)]
            ids += part
            nbytes += len(tokenizer.decode(part).encode("utf-8"))
            break
        ids += part
        nbytes += len(line.encode("utf-8"))
    eot = tokenizer.eos_token_id
    step = window - 1
    rows = [[eot] + ids[i: i + step] for i in range(0, len(ids), step)]
    return rows, nbytes


def wikitext_scores(runner: dict, tokenizer, text: str, max_tokens: int | None, window: int) -> dict:
    """Perplexity per token, bits per byte (the total negative log-likelihood in bits over the text's UTF-8
    bytes: comparable across tokenizers) and each window's NLL (for paired intervals)."""
    rows, nbytes = windows(tokenizer, text, max_tokens, window)
    logits_fn = runner["decoder"].logits if "decoder" in runner else zeroshot.torch_logits_fn(runner["model"])
    per_window = []
    for row in rows:  # one window a call: rows are long, and a batch of them would hold V x window floats each
        ids = np.asarray([row], dtype=np.int64)
        nll, count = onnxlm.nll_from_logits(logits_fn(ids, np.ones_like(ids)), ids, np.ones_like(ids))
        per_window.append([nll, count])
    total, tokens = sum(n for n, _ in per_window), sum(c for _, c in per_window)
    return {"perplexity": math.exp(total / tokens), "bits_per_byte": total / math.log(2) / nbytes,
            "nll": total / tokens, "tokens": tokens, "bytes": nbytes, "windows": per_window}
