"""The machine a run happened on, and the device and precision it resolves to (once)."""

from __future__ import annotations

import importlib.metadata
import os
import platform

from compress.errors import CompressError

_PACKAGES = ["compress", "torch", "transformers", "accelerate", "optimum", "optimum-onnx", "onnx", "onnxruntime", "numpy"]


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def int8_isa() -> str:
    """The int8 instruction set ONNX Runtime's quantized kernels will use on this CPU."""
    flags = cpu_flags()
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512bw" in flags:
        return "avx512"
    return "avx2"


def environment() -> dict:
    import torch

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    flags = cpu_flags()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")) or f in ("asimd", "asimddp", "i8mm", "bf16")),
        "int8_isa": int8_isa(),
        "gpu": gpu,
        "versions": versions,
    }


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise CompressError("device: cuda was asked for, but torch sees no CUDA GPU (set device: auto or cpu)")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def resolve_precision(requested: str, device: str) -> str:
    """auto -> bf16 where the hardware multiplies bf16 natively, else fp32."""
    import torch

    if requested == "fp16" and device == "cpu":
        raise CompressError("train.precision: fp16 needs a CUDA GPU; on CPU use bf16 or fp32")
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    flags = cpu_flags()
    native = {"avx512_bf16", "amx_bf16", "bf16"} & flags
    return "bf16" if native else "fp32"
