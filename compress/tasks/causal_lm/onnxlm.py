"""Decoders in ONNX Runtime: export with the KV cache (optimum-onnx, task text-generation-with-past: one
``model.onnx`` taking ``past_key_values.*`` and returning ``present.*``), logits with an empty cache, greedy
decoding through the cache, and perplexity for ONNX and PyTorch alike.

Greedy decoding over the session is written here by hand (a dozen lines) rather than through optimum's
ORTModelForCausalLM.generate: the same loop then times the time to first token and the tokens per second in
the latency worker with numpy and onnxruntime alone (no torch or transformers in the measured process, as on
a device), and it runs any ``.onnx`` file, including the int8 one, without an optimum model folder.
Imports numpy and onnxruntime only at module level.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from compress import onnxrun
from compress.layout import ONNX_FILE

TASK = "text-generation-with-past"


def export(src: Path, out: Path, opset: int | None = None) -> Path:
    """``src`` (a saved causal LM with its tokenizer) -> ``out/model.onnx`` with the KV cache, plus the tokenizer."""
    import logging

    from optimum.exporters.onnx import main_export
    from transformers import AutoTokenizer

    for name in ("optimum", "optimum.exporters", "optimum.exporters.onnx", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    main_export(str(src), output=out, task=TASK, opset=opset, do_validation=False, device="cpu")
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out / ONNX_FILE


class Decoder:
    """One ONNX Runtime session of a decoder with past inputs."""

    def __init__(self, path: Path, threads: int | None = None):
        self.sess = onnxrun.session(path, threads=threads)
        inputs = {i.name: i for i in self.sess.get_inputs()}
        self.input_names = set(inputs)
        self.past = sorted((n for n in inputs if n.startswith("past_key_values.")), key=_layer_order)
        if not self.past:
            raise ValueError(f"{path}: no past_key_values inputs; export with task {TASK}")
        shape = inputs[self.past[0]].shape  # (batch, kv heads, past length, head dim)
        self.kv_heads, self.head_dim = int(shape[1]), int(shape[3])
        self.dtype = np.float16 if "float16" in inputs[self.past[0]].type else np.float32
        self.outputs = ["logits"] + [n.replace("past_key_values.", "present.") for n in self.past]

    def empty_past(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch, self.kv_heads, 0, self.head_dim), dtype=self.dtype) for _ in self.past]

    def step(self, ids: np.ndarray, mask: np.ndarray, past: list[np.ndarray] | None = None):
        """(logits (B, L, V) fp32, presents): ``ids`` (B, L) new tokens, ``mask`` (B, past + L) for all so far."""
        ids = ids.astype(np.int64)
        past = self.empty_past(ids.shape[0]) if past is None else past
        feeds = {"input_ids": ids, "attention_mask": mask.astype(np.int64)}
        if "position_ids" in self.input_names:
            positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
            feeds["position_ids"] = positions[:, -ids.shape[1]:].astype(np.int64)
        feeds.update(zip(self.past, past))
        out = self.sess.run(self.outputs, feeds)
        return out[0].astype(np.float32), out[1:]

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.step(ids, mask)[0]

    def greedy(self, prompt: list[int], new_tokens: int, eos: int | None = None, timings: dict | None = None) -> list[int]:
        """Greedy tokens after ``prompt`` (batch 1), through the KV cache; stops at ``eos``. ``timings`` (a dict)
        receives the time to first token and the time of the tokens after it."""
        t0 = time.perf_counter()
        ids = np.asarray([prompt], dtype=np.int64)
        mask = np.ones_like(ids)
        logits, past = self.step(ids, mask)
        out = [int(logits[0, -1].argmax())]
        t1 = time.perf_counter()
        while len(out) < new_tokens and out[-1] != eos:
            mask = np.ones((1, mask.shape[1] + 1), dtype=np.int64)
            logits, past = self.step(np.asarray([[out[-1]]]), mask, past)
            out.append(int(logits[0, -1].argmax()))
        if timings is not None:
            timings.update(first_token_s=t1 - t0, decode_s=time.perf_counter() - t1, tokens=len(out))
        return out[:-1] if out and out[-1] == eos else out


def _layer_order(name: str) -> tuple[int, int]:
    parts = name.split(".")  # past_key_values.<layer>.<key|value>
    return int(parts[1]), 0 if parts[2] == "key" else 1


def nll_from_logits(logits: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """(sum of next-token negative log-likelihoods, tokens predicted) of one batch, masked on padding."""
    logits = logits[:, :-1].astype(np.float64)
    labels = ids[:, 1:]
    valid = (mask[:, 1:] > 0) & (mask[:, :-1] > 0)
    top = logits.max(-1, keepdims=True)
    logz = np.log(np.exp(logits - top).sum(-1)) + top[..., 0]
    picked = np.take_along_axis(logits, labels[..., None], -1)[..., 0]
    nll = (logz - picked)[valid]
    return float(nll.sum()), int(valid.sum())


def perplexity(logits_fn, rows: list[list[int]], pad_id: int, batch_size: int = 16) -> dict:
    """exp(mean next-token NLL) over every predicted token of ``rows``; ``logits_fn(ids, mask) -> (B, L, V)``."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        ids, mask = onnxrun.pad([rows[i] for i in order[start : start + batch_size]], pad_id)
        s, n = nll_from_logits(logits_fn(ids, mask), ids, mask)
        total, count = total + s, count + n
    mean = total / max(count, 1)
    return {"perplexity": round(float(np.exp(mean)), 4), "nll": round(mean, 5), "tokens": count}


def torch_logits_fn(model):
    """``logits_fn`` of a PyTorch causal LM (fp32, no grad)."""
    import torch

    model.eval()

    def fn(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.float().numpy()

    return fn


def torch_greedy(model, prompt: list[int], new_tokens: int, eos: int | None, pad: int | None) -> list[int]:
    """The reference: transformers' own ``generate`` (greedy), stopping at ``eos`` like Decoder.greedy."""
    import torch

    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=eos, pad_token_id=pad if pad is not None else eos, temperature=None,
                             top_p=None, top_k=None)
    tokens = out[0, len(prompt):].tolist()
    return tokens[:-1] if tokens and tokens[-1] == eos else tokens


def torch_greedy_timed(model, prompt: list[int], new_tokens: int, timings: dict) -> list[int]:
    """Greedy through PyTorch's KV cache by hand, timed like Decoder.greedy (the latency worker's torch side)."""
    import torch

    with torch.no_grad():
        t0 = time.perf_counter()
        ids = torch.tensor([prompt])
        out_ = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
        past, out = out_.past_key_values, [int(out_.logits[0, -1].argmax())]
        t1 = time.perf_counter()
        length = len(prompt)
        while len(out) < new_tokens:
            length += 1
            o = model(input_ids=torch.tensor([[out[-1]]]), attention_mask=torch.ones((1, length), dtype=torch.long),
                      past_key_values=past, use_cache=True)
            past = o.past_key_values
            out.append(int(o.logits[0, -1].argmax()))
    timings.update(first_token_s=t1 - t0, decode_s=time.perf_counter() - t1, tokens=len(out))
    return out
