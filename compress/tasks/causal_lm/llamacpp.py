"""llama.cpp as the peer an edge user runs today: a GGUF decoder through llama-cpp-python (the optional extra
``peer``), timed like Decoder.greedy (time to first token, then one token per call through its KV cache),
its tokenizer, and per-position logits for zero-shot scoring.

Greedy is written here over ``Llama.eval`` and the logits it leaves in the context (numpy argmax, as the ONNX and PyTorch
loops do) rather than through ``Llama.generate``, whose sampler chain and prefix matching would time more than
the model. Imports numpy at module level; llama_cpp only when called.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def unavailable() -> str | None:
    """Why llama.cpp cannot run here (None when it can)."""
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError, RuntimeError) as exc:  # not installed, or its shared library does not load
        return f"llama-cpp-python does not import ({type(exc).__name__}: {str(exc).strip()[:120]}); " \
               "pip install 'compress[peer]'"
    return None


def info() -> dict:
    """llama-cpp-python's version and the CPU features its llama.cpp build uses."""
    import llama_cpp

    system = llama_cpp.llama_print_system_info()
    return {"llama_cpp_python": llama_cpp.__version__,
            "system_info": system.decode() if isinstance(system, bytes) else str(system)}


def load(path: Path, threads: int, n_ctx: int = 512, logits_all: bool = False, vocab_only: bool = False):
    """A ``llama_cpp.Llama`` on ``path`` with ``threads`` for prompt and generation alike."""
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                 logits_all=logits_all, vocab_only=vocab_only, verbose=False)


def tokenize(llm, text: str) -> list[int]:
    """llama.cpp's token ids of ``text``: no BOS, special tokens as plain text (as add_special_tokens=False)."""
    return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def _last_logits(llm) -> np.ndarray:
    """The logits of the last token evaluated, read from the llama.cpp context (Llama.eval keeps them in
    ``scores`` only with logits_all since llama-cpp-python 0.3)."""
    import llama_cpp

    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))


def greedy(llm, prompt: list[int], new_tokens: int, timings: dict | None = None) -> list[int]:
    """``new_tokens`` greedy tokens after ``prompt`` (batch 1, no stop), timed like onnxlm.Decoder.greedy."""
    t0 = time.perf_counter()
    llm.reset()
    llm.eval(prompt)
    out = [int(_last_logits(llm).argmax())]
    t1 = time.perf_counter()
    while len(out) < new_tokens:
        llm.eval([out[-1]])
        out.append(int(_last_logits(llm).argmax()))
    if timings is not None:
        timings.update(first_token_s=t1 - t0, decode_s=time.perf_counter() - t1, tokens=len(out))
    return out


def logits_fn(llm):
    """``logits_fn(ids, mask) -> (B, L, V)`` over a Llama loaded with ``logits_all=True``: one row at a time,
    each from an empty cache; the padded positions are left zero (the callers read only the unmasked ones)."""

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = np.zeros((*ids.shape, llm.n_vocab()), dtype=np.float32)
        for r in range(ids.shape[0]):
            n = int(mask[r].sum())
            llm.reset()
            llm.eval([int(t) for t in ids[r, :n]])
            out[r, :n] = llm.scores[:n]
        return out

    return run
