"""Zero-shot scores of a causal LM, as lm-evaluation-harness computes them (0-shot, log-likelihood).

Every item is a context and its candidate continuations; a candidate's score is the sum of the log-probabilities
of its tokens after the context. The pairs are tokenized as the harness does (``_encode_pair``: spaces at the end
of the context move to the continuation; the continuation's tokens are those of context + continuation after the
context's own tokens; no special tokens; an empty context is the end-of-text token).

    hellaswag   "<activity>: <context>" + " " + ending; preprocess() of the harness; acc and acc_norm
    piqa        "Question: <goal>\\nAnswer:" + " " + solution; acc and acc_norm
    arc_easy    "Question: <question>\\nAnswer:" + " " + answer; acc and acc_norm
    lambada     the passage without its last word + " " + the word; acc (greedy: every token the argmax) and
                the perplexity of the words

acc_norm divides each candidate's log-likelihood by its length in characters (the harness's ``acc_norm``). One
difference from the harness, forced by the data: the HellaSwag file holds ``ctx`` whole, so its second part
(``ctx_b``) is not capitalised as the harness capitalises it.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress.errors import CompressError
from compress.io import read_jsonl

SETS = ("hellaswag", "piqa", "arc_easy", "lambada")
FILES = {"hellaswag": "hellaswag_val.jsonl", "piqa": "piqa.jsonl", "arc_easy": "arc_easy.jsonl",
         "lambada": "lambada_openai.jsonl"}
CHANCE = {"hellaswag": 0.25, "piqa": 0.5, "arc_easy": 0.25, "lambada": 0.0}  # arc_easy: most items have 4 choices


@dataclass
class Item:
    context: str
    choices: list[str]  # continuations without the delimiter (what acc_norm measures)
    gold: int
    delimiter: str = " "

    def continuations(self) -> list[str]:
        return [self.delimiter + c for c in self.choices]


def preprocess(text: str) -> str:
    """lm-evaluation-harness's HellaSwag clean-up: WikiHow's bracketed artifacts out, ' [title]' to '. '."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _question(query: str) -> str:
    """'Question: <q>' (llm-foundry's files, a trailing newline or not) -> the harness's 'Question: <q>\\nAnswer:'."""
    q = query.strip()
    q = q[len("Question:"):].strip() if q.startswith("Question:") else q
    return f"Question: {q}\nAnswer:"


def load(name: str, folder: Path, limit: int | None = None, seed: int = 0) -> list[Item]:
    """The items of one set from ``folder`` (../shared/data/llm/eval); ``limit`` items drawn with ``seed``
    (in file order), or every item."""
    if name not in FILES:
        raise CompressError(f"zero-shot set {name!r}: unknown; known: {', '.join(SETS)}")
    path = Path(folder) / FILES[name]
    if not path.is_file():
        raise CompressError(f"{path}: not found (the evaluation sets of ../shared/data/llm/eval)")
    rows = read_jsonl(path)
    if limit is not None and limit < len(rows):
        keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
        rows = [rows[i] for i in keep]
    try:
        return [_item(name, r) for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise CompressError(f"{path}: an item lacks {exc} (expected the fields of {FILES[name]})") from None


def _item(name: str, r: dict) -> Item:
    if name == "hellaswag":
        return Item(preprocess(r["ctx"]), [preprocess(e) for e in r["endings"]], int(r["label"]))
    if name in ("piqa", "arc_easy"):
        return Item(_question(r["query"]), list(r["choices"]), int(r["gold"]))
    context, word = r["context"], r["continuation"]
    context, word = context.rstrip(), word.strip()  # the harness: the passage, then " " + its last word
    return Item(context, [word], 0)


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """The harness's ``_encode_pair``: (context tokens, continuation tokens)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    if not context:
        eot = tokenizer.eos_token_id
        return [eot], whole
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return ctx, whole[len(ctx):]


def loglikelihoods(logits_fn, pairs: list[tuple[list[int], list[int]]], max_length: int, pad_id: int,
                   batch_size: int = 16) -> list[tuple[float, bool]]:
    """(sum of the continuation's log-probabilities, every continuation token the argmax) of each pair.
    ``logits_fn(ids, mask) -> [batch, length, vocab]`` (PyTorch or ONNX Runtime); the rows go in longest first,
    right-padded, cut to the last ``max_length`` tokens as the harness cuts them."""
    rows = []
    for ctx, cont in pairs:
        if not cont:
            raise CompressError("zero-shot: a continuation gives no tokens")
        ids = (ctx + cont)[-(max_length + 1):][:-1]  # the inputs: every token but the last one predicted
        rows.append((ids, len(cont), cont))
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    out: list[tuple[float, bool] | None] = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(rows[i][0]) for i in idx)
        ids = np.full((len(idx), width), pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(idx):
            n = len(rows[i][0])
            ids[r, :n], mask[r, :n] = rows[i][0], 1
        logits = logits_fn(ids, mask)
        for r, i in enumerate(idx):
            n, k, cont = len(rows[i][0]), rows[i][1], rows[i][2]
            step = np.asarray(logits[r, n - k:n], dtype=np.float64)  # the positions that predict the continuation
            logp = step - _logsumexp(step)
            out[i] = (float(logp[np.arange(k), cont].sum()), bool((step.argmax(-1) == np.asarray(cont)).all()))
    return out  # type: ignore[return-value]


def shared_context_loglikelihoods(model, groups: list[tuple[list[int], list[list[int]]]]) -> list[list[tuple[float, bool]]]:
    """What :func:`loglikelihoods` gives, for a PyTorch causal LM, computing each context once for all its
    continuations (HellaSwag's four endings): the context runs alone and fills the KV cache, its last logits
    predict each continuation's first token, and the continuations run together on the cached context. Only the
    positions that predict a continuation token go through the output layer."""
    import torch

    out, head, device = [], model.get_output_embeddings(), model.device
    with torch.inference_mode():
        for ctx, conts in groups:
            first = model.base_model(input_ids=torch.tensor([ctx], device=device), use_cache=True)
            head_first = head(first[0][0, -1]).double()  # the output layer on the context's last position only
            past = first.past_key_values
            past.batch_repeat_interleave(len(conts))
            width = max(len(c) for c in conts) - 1
            results = []
            if width > 0:
                ids = torch.zeros((len(conts), width), dtype=torch.long)  # padding: any id, masked out
                mask = torch.zeros((len(conts), len(ctx) + width), dtype=torch.long)
                mask[:, : len(ctx)] = 1
                for r, c in enumerate(conts):
                    ids[r, : len(c) - 1] = torch.tensor(c[:-1])
                    mask[r, len(ctx): len(ctx) + len(c) - 1] = 1
                hidden = model.base_model(input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=past,
                                          use_cache=True)[0]
            for r, c in enumerate(conts):
                rows = [head_first] + ([head(hidden[r, : len(c) - 1]).double()] if len(c) > 1 else [])
                step = torch.cat([rows[0][None]] + rows[1:], 0)
                logp = step - torch.logsumexp(step, -1, keepdim=True)
                target = torch.tensor(c, device=device)
                results.append((float(logp[torch.arange(len(c)), target].sum()),
                                bool((step.argmax(-1) == target).all())))
            out.append(results)
    return out


def decoder_shared_context_loglikelihoods(decoder, groups: list[tuple[list[int], list[list[int]]]]) -> list[list[tuple[float, bool]]]:
    """:func:`shared_context_loglikelihoods` for an ONNX decoder with its KV cache (onnxlm.Decoder): the context
    runs once, its cache is repeated for the continuations, which run together right-padded."""
    out = []
    for ctx, conts in groups:
        logits, past = decoder.step(np.asarray([ctx], dtype=np.int64), np.ones((1, len(ctx)), dtype=np.int64))
        first = np.asarray(logits[0, -1], dtype=np.float64)
        width = max(len(c) for c in conts) - 1
        rest = None
        if width > 0:
            ids = np.zeros((len(conts), width), dtype=np.int64)
            mask = np.zeros((len(conts), len(ctx) + width), dtype=np.int64)
            mask[:, : len(ctx)] = 1
            for r, c in enumerate(conts):
                ids[r, : len(c) - 1] = c[:-1]
                mask[r, len(ctx): len(ctx) + len(c) - 1] = 1
            rest, _ = decoder.step(ids, mask, [np.repeat(p, len(conts), axis=0) for p in past])
        results = []
        for r, c in enumerate(conts):
            step = np.concatenate([first[None]] + ([np.asarray(rest[r, : len(c) - 1], dtype=np.float64)]
                                                   if len(c) > 1 else []), 0)
            logp = step - _logsumexp(step)
            results.append((float(logp[np.arange(len(c)), c].sum()), bool((step.argmax(-1) == np.asarray(c)).all())))
        out.append(results)
    return out


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(-1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(-1, keepdims=True))


def score(name: str, items: list[Item], tokenizer, logits_fn=None, max_length: int = 2048, batch_size: int = 16,
          model=None, decoder=None) -> dict:
    """acc, acc_norm (multiple choice) or acc and perplexity (lambada) over ``items``, with each item's outcome
    (for paired differences between two models on the same items). With ``model`` (a PyTorch causal LM) or
    ``decoder`` (an ONNX decoder with its KV cache, onnxlm.Decoder) each context is computed once for its
    continuations; else every pair goes through ``logits_fn``."""
    encoded = [[encode_pair(tokenizer, item.context, c) for c in item.continuations()] for item in items]
    shared = (model is not None or decoder is not None) and all(
        len({tuple(ctx) for ctx, _ in e}) == 1 and max(len(ctx) + len(cont) for ctx, cont in e) <= max_length
        for e in encoded)
    if shared:
        groups = [(e[0][0], [cont for _, cont in e]) for e in encoded]
        per_item = (shared_context_loglikelihoods(model, groups) if model is not None
                    else decoder_shared_context_loglikelihoods(decoder, groups))
    else:
        logits_fn = logits_fn or (decoder.logits if decoder is not None else torch_logits_fn(model))
        flat = loglikelihoods(logits_fn, [p for e in encoded for p in e], max_length,
                              tokenizer.pad_token_id, batch_size)
        ends = np.cumsum([len(e) for e in encoded])
        per_item = [flat[end - len(e):end] for e, end in zip(encoded, ends)]
    if name == "lambada":
        correct = np.array([rs[0][1] for rs in per_item], dtype=np.int8)
        nll = -sum(rs[0][0] for rs in per_item)
        return {"set": name, "items": len(items), "acc": float(correct.mean()), "correct": correct.tolist(),
                "perplexity": math.exp(nll / len(items))}
    lls = [np.array([r[0] for r in rs]) for rs in per_item]
    lengths = [np.array([float(len(c)) for c in item.choices]) for item in items]
    acc = np.array([int(np.argmax(ll) == item.gold) for ll, item in zip(lls, items)], dtype=np.int8)
    norm = np.array([int(np.argmax(ll / n) == item.gold) for ll, n, item in zip(lls, lengths, items)], dtype=np.int8)
    return {"set": name, "items": len(items), "acc": float(acc.mean()), "acc_norm": float(norm.mean()),
            "correct": acc.tolist(), "correct_norm": norm.tolist(), "chance": CHANCE[name]}


def torch_logits_fn(model):
    """``logits_fn`` of a transformers causal LM in fp32 (no gradients)."""
    import torch

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(input_ids=torch.from_numpy(ids).to(model.device),
                        attention_mask=torch.from_numpy(mask).to(model.device)).logits
        return out.float().cpu().numpy()

    return run
