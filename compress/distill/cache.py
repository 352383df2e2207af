"""A content-addressed cache of the frozen teacher's outputs, so distillation runs the teacher once.

The key (``cache_key``) is a sha256 over the teacher's weight and config files, the token ids
and labels of the data, the storage format (full logits or top-k) and the temperature. A
cache entry is one safetensors file ``<root>/<key>.safetensors``:

    full:  "logits"        float32 (N, C)  or (N, L, C)   raw teacher logits
    top-k: "topk_values"   float32 (N, k)  or (N, L, k)   raw logits of the k largest classes, descending
           "topk_indices"  int32   (N, k)  or (N, L, k)   their class ids
           "rest_mass"     float32 (N,)    or (N, L)      softmax(logits / T) mass outside the top-k

with string metadata ``format``, ``top_k``, ``temperature``, ``num_rows``, ``num_classes``,
``autocast``, ``created`` and ``sha256`` (over the tensor bytes, checked on every ``get``).
Rows are in the original order of the data. The (N, L, ...) forms are for token-level models:
L is the longest row, and positions past a row's length are zero and must be masked by the caller.
Full logits are the default for small label sets (C <= 1024, see ``default_top_k``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from compress.data import Encoded, collate, eval_batches
from compress.digests import MEMO, data_digest, files_digest
from compress.errors import CompressError
from compress.layout import teacher_cache as cache_root

FULL_LOGITS_MAX_CLASSES = 1024
FORMAT_VERSION = 1


def default_top_k(num_classes: int, k: int = 64) -> int | None:
    """None (store full logits) when the label set is small, else ``k`` (top-k soft targets)."""
    return None if num_classes <= FULL_LOGITS_MAX_CLASSES else min(k, num_classes)


@dataclass
class CachedOutputs:
    """Teacher outputs for every row of a data set: either full ``logits`` or the top-k form (see module doc)."""

    logits: torch.Tensor | None = None
    topk_values: torch.Tensor | None = None
    topk_indices: torch.Tensor | None = None
    rest_mass: torch.Tensor | None = None
    temperature: float = 1.0
    num_classes: int | None = None
    autocast: str | None = None  # the autocast dtype the teacher ran under, e.g. "bfloat16"; None: fp32

    def __post_init__(self):
        topk = (self.topk_values, self.topk_indices, self.rest_mass)
        if self.logits is not None:
            if any(t is not None for t in topk):
                raise ValueError("CachedOutputs: give either logits or the top-k tensors, not both")
            self.num_classes = self.num_classes or self.logits.shape[-1]
        elif any(t is None for t in topk):
            raise ValueError("CachedOutputs: give either logits, or topk_values, topk_indices and rest_mass")
        elif not (self.topk_values.shape == self.topk_indices.shape and self.rest_mass.shape == self.topk_values.shape[:-1]):
            raise ValueError(f"CachedOutputs: top-k shapes disagree: {[tuple(t.shape) for t in topk]}")

    @property
    def format(self) -> str:
        return "full" if self.logits is not None else "topk"

    @property
    def top_k(self) -> int | None:
        return None if self.logits is not None else self.topk_values.shape[-1]

    @property
    def per_token(self) -> bool:
        """True for token-level outputs, (N, L, ...); False for one output per row, (N, ...)."""
        return (self.logits.dim() == 3) if self.logits is not None else (self.rest_mass.dim() == 2)

    @property
    def num_rows(self) -> int:
        return (self.logits if self.logits is not None else self.topk_values).shape[0]

    def tensors(self) -> dict[str, torch.Tensor]:
        if self.logits is not None:
            return {"logits": self.logits}
        return {"topk_values": self.topk_values, "topk_indices": self.topk_indices, "rest_mass": self.rest_mass}

    def soft_targets(self, rows: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Full logits: the raw teacher logits of ``rows``, (B, C) or (B, L, C); the caller applies T and the loss.

        ``temperature`` is not used (raw logits do not depend on it). Top-k outputs raise: use ``topk_distribution``.
        """
        if self.logits is None:
            raise ValueError("CachedOutputs.soft_targets: these are top-k outputs; use topk_distribution(rows)")
        return self.logits[rows]

    def topk_distribution(self, rows: torch.Tensor, temperature: float | None = None):
        """Top-k soft targets of ``rows`` at the stored temperature: (probs, rest_mass, indices).

        probs (B[, L], k) float32 = softmax(logits / T) at the k classes ``indices`` (B[, L], k) int64;
        rest_mass (B[, L]) is the mass of all other classes, so probs.sum(-1) + rest_mass == 1.
        ``temperature``, if given, must equal the stored one (the rest mass was computed at it).
        """
        if self.logits is not None:
            raise ValueError("CachedOutputs.topk_distribution: these are full logits; use soft_targets(rows)")
        if temperature is not None and float(temperature) != float(self.temperature):
            raise ValueError(f"CachedOutputs: top-k targets were stored at T={self.temperature}, asked for T={temperature}")
        values, rest = self.topk_values[rows].float(), self.rest_mass[rows].float()
        probs = torch.softmax(values / self.temperature, dim=-1) * (1.0 - rest).unsqueeze(-1)
        return probs, rest, self.topk_indices[rows].long()


# ----------------------------------------------------------------------------- the key


def teacher_digest(teacher_dir: Path, memo_path: Path | None = None) -> str:
    """sha256 over the teacher's *.safetensors files, its shard index (if any) and config.json, with file hashes
    remembered in ``memo_path`` (compress.digests.files_digest)."""
    teacher_dir = Path(teacher_dir)
    weights = sorted(teacher_dir.glob("*.safetensors"))
    if not weights:
        raise CompressError(f"teacher cache: no *.safetensors weights in {teacher_dir}")
    if not (teacher_dir / "config.json").is_file():
        raise CompressError(f"teacher cache: {teacher_dir / 'config.json'} missing")
    files = weights + [p for p in (teacher_dir / "model.safetensors.index.json", teacher_dir / "config.json") if p.is_file()]
    return files_digest(files, memo_path)


def cache_key(teacher_dir: Path, data: Encoded, temperature: float, top_k: int | None, extra: dict | None = None,
              memo_path: Path | None = None) -> str:
    """The content address of the teacher's outputs on ``data`` (64 hex chars).

    ``extra`` (JSON-able) is for anything else that changes the outputs, e.g. {"autocast": "bfloat16"}.
    ``memo_path``: where to remember file hashes; ``TeacherCache.key`` passes one beside the cache.
    """
    spec = {
        "version": FORMAT_VERSION,
        "teacher": teacher_digest(teacher_dir, memo_path),
        "data": data_digest(data),
        "format": "full" if top_k is None else "topk",
        "top_k": None if top_k is None else int(top_k),
        "temperature": repr(float(temperature)),
        "extra": extra or {},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


# ----------------------------------------------------------------------------- the store


def _tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + b"\0")
        digest.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


class TeacherCache:
    """A folder of teacher outputs, one safetensors file per key."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def key(self, teacher_dir: Path, data: Encoded, temperature: float, top_k: int | None, extra: dict | None = None) -> str:
        """``cache_key`` with the file-hash memo kept beside this cache."""
        return cache_key(teacher_dir, data, temperature, top_k, extra, memo_path=self.root / MEMO)

    def get(self, key: str) -> CachedOutputs | None:
        """The outputs stored under ``key``; None when absent, or (with a warning) unreadable or corrupt."""
        from safetensors import safe_open

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {name: fh.get_tensor(name) for name in fh.keys()}
            if meta.get("sha256") != _tensor_digest(tensors):
                raise ValueError("checksum mismatch")
            out = CachedOutputs(**tensors, temperature=float(meta["temperature"]),
                                num_classes=int(meta["num_classes"]) if meta.get("num_classes") else None,
                                autocast=meta.get("autocast") or None)
            if out.format != meta.get("format") or out.num_rows != int(meta["num_rows"]):
                raise ValueError("metadata disagrees with the tensors")
            return out
        except Exception as exc:  # a truncated or damaged file is a miss, never a crash
            warnings.warn(f"teacher cache: {path} is unreadable ({type(exc).__name__}: {exc}); recomputing", stacklevel=2)
            return None

    def put(self, key: str, outputs: CachedOutputs) -> Path:
        """Store ``outputs`` under ``key`` atomically (temporary file, then os.replace); returns the path."""
        from safetensors.torch import save_file

        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in outputs.tensors().items()}
        meta = {"format": outputs.format, "top_k": str(outputs.top_k or ""), "temperature": repr(float(outputs.temperature)),
                "num_rows": str(outputs.num_rows), "num_classes": str(outputs.num_classes or ""),
                "autocast": outputs.autocast or "", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "sha256": _tensor_digest(tensors)}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            save_file(tensors, str(tmp), metadata=meta)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path


def get_or_compute(cache: TeacherCache, key: str, compute: Callable[[], CachedOutputs]) -> tuple[CachedOutputs, bool]:
    """(outputs, hit). On a miss, ``compute()`` runs and its result is stored; a failed store only warns."""
    found = cache.get(key)
    if found is not None:
        return found, True
    outputs = compute()
    try:
        cache.put(key, outputs)
    except OSError as exc:
        warnings.warn(f"teacher cache: could not store {cache.path(key)}: {exc}", stacklevel=2)
    return outputs, False


# ----------------------------------------------------------------------------- computing and checking


def _topk(logits: torch.Tensor, k: int, temperature: float):
    """Top-k raw logits, their ids, and the softmax(logits / T) mass outside them (exactly 0 when k == C)."""
    values, indices = torch.topk(logits, k, dim=-1)
    scaled = logits / temperature
    rest = scaled.scatter(-1, indices, float("-inf"))
    rest_mass = torch.exp(torch.logsumexp(rest, dim=-1) - torch.logsumexp(scaled, dim=-1))
    return values, indices.to(torch.int32), rest_mass


@torch.no_grad()
def compute_teacher_outputs(model: torch.nn.Module, data: Encoded, pad_id: int, batch_size: int, device: str,
                            top_k: int | None, temperature: float, autocast_dtype: torch.dtype | None = None,
                            progress: Callable[[int, int], None] | None = None) -> CachedOutputs:
    """One eval-mode pass of ``model`` over ``data`` (batched by length), in the original row order.

    Logits are kept in float32 whatever ``autocast_dtype`` the model ran under. ``top_k`` None
    stores full logits; else the top-k form at ``temperature``. ``progress(done_rows, total_rows)``
    is called after each batch. Batching is that of ``predict_logits``, so full logits equal it bit for bit.
    """
    if temperature <= 0:
        raise CompressError(f"teacher cache: temperature must be > 0, got {temperature}")
    if len(data) == 0:
        raise CompressError("teacher cache: no rows to run the teacher on")
    lengths = [len(ids) for ids in data.input_ids]
    num_classes = None
    outs: dict[str, torch.Tensor] = {}
    pad, done, was_training = collate(pad_id), 0, model.training
    model.eval().to(device)
    try:
        for idx in eval_batches(lengths, batch_size):
            batch = pad([data[i] for i in idx])
            inputs = {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}
            if autocast_dtype is not None:
                with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype):
                    logits = model(**inputs).logits
            else:
                logits = model(**inputs).logits
            logits = logits.float()
            num_classes = logits.shape[-1]
            if top_k is None:
                parts = {"logits": logits}
            else:
                if not 1 <= top_k <= num_classes:
                    raise CompressError(f"teacher cache: top_k must be in 1..{num_classes} (the classes), got {top_k}")
                parts = dict(zip(("topk_values", "topk_indices", "rest_mass"), _topk(logits, top_k, temperature)))
            per_token = logits.dim() == 3  # (B, L, C): a token-level model
            for name, part in parts.items():
                part = part.cpu()
                if per_token:  # batch padding positions hold the outputs of pad tokens: zero them
                    part[batch["attention_mask"] == 0] = 0
                if name not in outs:  # (N, ...) for per-row outputs; (N, L_max, ...) for per-token ones
                    lead = (len(data), max(lengths)) if per_token else (len(data),)
                    outs[name] = torch.zeros(lead + tuple(part.shape[len(lead):]), dtype=part.dtype)
                if per_token:
                    outs[name][idx, : part.shape[1]] = part
                else:
                    outs[name][idx] = part
            done += len(idx)
            if progress is not None:
                progress(done, len(data))
    finally:
        model.train(was_training)
    return CachedOutputs(**outs, temperature=float(temperature), num_classes=num_classes,
                         autocast=str(autocast_dtype).removeprefix("torch.") if autocast_dtype is not None else None)


def fidelity_check(model: torch.nn.Module, data: Encoded, cached: CachedOutputs, pad_id: int, sample: int = 64,
                   seed: int = 0, atol: float = 1e-3, batch_size: int = 32, device: str | None = None) -> dict:
    """Recompute the teacher live (fp32) on a seeded sample of rows and compare with ``cached``.

    Compared: the logits (full) or the top-k logits and rest mass (top-k), over real positions only.
    Returns {"rows", "max_abs_diff", "top1_agreement", "ok"}; ok when max_abs_diff <= atol.
    The default atol suits an fp32 cache; for one computed under bf16 autocast pass a looser one
    (bf16 keeps ~3 significant digits: an atol of about 0.05-0.1 for logits of magnitude ~10).
    """
    if cached.num_rows != len(data):
        raise CompressError(f"teacher cache: {cached.num_rows} cached rows but the data has {len(data)}")
    rows = sorted(random.Random(seed).sample(range(len(data)), min(sample, len(data))))
    subset = Encoded([data.input_ids[i] for i in rows], [data.labels[i] for i in rows])
    if device is None:
        device = str(next(model.parameters()).device)
    live = compute_teacher_outputs(model, subset, pad_id, batch_size, device, cached.top_k, cached.temperature)
    max_diff, agree, total = 0.0, 0, 0
    for j, i in enumerate(rows):
        n = len(data.input_ids[i])  # per-token outputs: compare the row's real positions only
        mine_i = {k: (v[i, :n] if cached.per_token else v[i]) for k, v in cached.tensors().items()}
        live_j = {k: (v[j, :n] if live.per_token else v[j]) for k, v in live.tensors().items()}
        for name in ("logits", "topk_values", "rest_mass"):
            if name in mine_i:
                max_diff = max(max_diff, (mine_i[name].float() - live_j[name].float()).abs().max().item())
        if cached.format == "full":
            a, b = mine_i["logits"].argmax(-1), live_j["logits"].argmax(-1)
        else:
            a, b = mine_i["topk_indices"][..., 0], live_j["topk_indices"][..., 0]
        agree += int((a == b).sum())
        total += a.numel()
    return {"rows": len(rows), "max_abs_diff": max_diff, "top1_agreement": agree / max(1, total), "ok": max_diff <= atol}


BF16_FIDELITY_ATOL = 0.15  # bf16 keeps ~3 significant digits of logits of magnitude ~5


def for_run(cfg, ctx, dcfg, teacher: torch.nn.Module, teacher_dir: Path, data: Encoded, pad_id: int, precision: str,
            top_k: int | None, what: str, batch_size: int = 128, bf16_atol: float = BF16_FIDELITY_ATOL):
    """(outputs, info) of a distillation stage: the teacher's outputs on ``data`` from the run's cache
    (``distill.cache.dir``, else <runs-dir>/.cache/teacher-outputs), computed once under the training precision's
    autocast on a miss (one process computes, the others read), then checked against the live fp32 teacher on
    ``distill.cache.fidelity_samples`` rows (atol 1e-3 for an fp32 cache, ``bf16_atol`` under autocast)."""
    from accelerate import PartialState

    runs_dir = ctx.runs_dir or ctx.run_dir.parent
    root = Path(dcfg.cache.dir) if dcfg.cache.dir else cache_root(runs_dir)
    store = TeacherCache(root)
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    # Full logits are raw, whatever T: the key holds T only for top-k soft targets, so runs and sweeps
    # over the temperature share one cache entry.
    key = store.key(teacher_dir, data, dcfg.temperature if top_k else 1.0, top_k, extra={"autocast": str(autocast)})
    device = str(next(teacher.parameters()).device)

    def compute():
        form = f"top-{top_k} with the remaining mass" if top_k else "full logits"
        with ctx.console.status(f"teacher outputs for {len(data)} {what} ({form}; once, cached in {root})"):
            return compute_teacher_outputs(teacher, data, pad_id, batch_size, device, top_k, dcfg.temperature,
                                           autocast_dtype=autocast)

    with PartialState().main_process_first():  # one process computes; the others then read the cache
        outputs, hit = get_or_compute(store, key, compute)
    info = {"hit": hit, "key": key[:16], "dir": str(root), "format": outputs.format, "top_k": outputs.top_k,
            "autocast": outputs.autocast}
    if dcfg.cache.fidelity_samples:
        atol = bf16_atol if autocast is not None else 1e-3
        with ctx.console.status(f"teacher outputs: fidelity check on {dcfg.cache.fidelity_samples} {what}"):
            check = fidelity_check(teacher, data, outputs, pad_id, sample=dcfg.cache.fidelity_samples, seed=cfg.seed,
                                   atol=atol, device=device, batch_size=min(32, batch_size))
        info["fidelity"] = {**check, "atol": atol}
        if not check["ok"]:
            raise CompressError(f"distill.cache: cached teacher outputs differ from the live teacher by "
                                f"{check['max_abs_diff']:.3g} (atol {atol}) in {store.path(key)}; delete it and run again")
    ctx.console.print(f"teacher outputs: cache {'hit' if hit else 'miss, computed and stored'} ({key[:12]})"
                      + (f", fidelity max diff {info['fidelity']['max_abs_diff']:.2e}, top-1 agreement "
                         f"{info['fidelity']['top1_agreement']:.1%} on {info['fidelity']['rows']} {what}"
                         if "fidelity" in info else ""))
    return outputs, info
