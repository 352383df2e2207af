"""The targets latency and memory are measured on (``bench.targets``), and how each variant runs there.

A target is measured at one or more cases, a case being one query shape on one target:

- ``cpu``: ONNX Runtime's CPU provider on ``bench.threads`` (all cores by default), PyTorch variants in torch
  eager; ``bench.batch_size`` x ``bench.sequence_length``.
- ``mobile``: one intra-op thread, batch 1, at each of ``bench.mobile_sequence_lengths``; the shipped variant
  as the mobile stage's ``model.ort``, the other ONNX variants as their ``.onnx``; PyTorch is not run there.
  A stand-in for one big core of a phone or a Pi-class board.
- ``gpu``: CUDA: ONNX variants on ONNX Runtime's CUDA provider, PyTorch variants on ``cuda``; skipped,
  with the reason, where torch sees no GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compress.quant.gpu import CUDA_EP, onnx_cuda_missing

ARENA = "enable_cpu_mem_arena=1"  # what compress.onnxrun.session sets for every ONNX Runtime session


@dataclass(frozen=True)
class Case:
    """One query shape on one target."""

    target: str  # cpu | mobile | gpu
    batch_size: int
    sequence_length: int
    threads: int | None  # intra-op threads; None = all cores

    @property
    def key(self) -> str:
        return f"{self.target}@{self.sequence_length}"

    def to_dict(self) -> dict:
        return {"key": self.key, "target": self.target, "batch_size": self.batch_size,
                "sequence_length": self.sequence_length, "threads": self.threads}


@dataclass
class Plan:
    """How one variant is measured on one case."""

    path: Path  # .onnx / .ort file, or a PyTorch model folder
    device: str
    threads: int | None
    providers: list[str] | None = None


def cases(bcfg) -> dict[str, list[Case]]:
    """The cases of each target in ``bench.targets``, in order."""
    out = {}
    for target in bcfg.targets:
        if target == "mobile":
            out[target] = [Case("mobile", 1, n, 1) for n in bcfg.mobile_sequence_lengths]
        else:
            out[target] = [Case(target, bcfg.batch_size, bcfg.sequence_length, bcfg.threads)]
    return out


def unavailable(target: str) -> str | None:
    """Why ``target`` cannot be measured on this machine, or None when it can."""
    if target != "gpu":
        return None
    import torch

    if not torch.cuda.is_available():
        return "no CUDA: torch.cuda.is_available() is false on this machine"
    return None


def plan(variant, case: Case, ort_file: Path | None, shipped: str | None) -> Plan | str:
    """How ``variant`` runs on ``case``, or why it is not run there (a sentence)."""
    if case.target == "cpu":
        if variant.device == "cuda":
            return "runs on CUDA only (measured on the gpu target)"
        return Plan(variant.path, "cpu", case.threads, variant.providers)
    if case.target == "mobile":
        if variant.format != "onnx":
            return "a PyTorch model: ONNX Runtime Mobile runs ONNX and ORT-format models"
        if variant.device == "cuda":
            return "runs on CUDA only"
        path = ort_file if variant.name == shipped and ort_file is not None and ort_file.is_file() else variant.path
        return Plan(path, "cpu", 1)
    # gpu
    if variant.loader == "torch_int8":
        return "PyTorch dynamic int8 kernels run on CPU only"
    if variant.format == "pytorch":
        return Plan(variant.path, "cuda", case.threads)

    reason = onnx_cuda_missing()
    return reason or Plan(variant.path, "cuda", case.threads, [CUDA_EP, "CPUExecutionProvider"])


def home(variant) -> str:
    """The target whose figures stand for the variant in the variants table: where it is meant to run."""
    return "gpu" if variant.device == "cuda" else "cpu"
