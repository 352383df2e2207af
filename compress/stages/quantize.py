"""Quantize: ONNX Runtime dynamic int8 of the exported student, through optimum's ORTQuantizer.

Weights become int8 offline; activations are quantized at run time, so no calibration data
is needed. The kernels target the int8 instructions this CPU has (VNNI or not).
"""

from __future__ import annotations

import logging
import os

from compress.envinfo import int8_isa

NAME = "quantize"
DEPENDS = ("export",)
CONFIG = ("quantize",)


def run(cfg, ctx) -> dict:
    qcfg = cfg.quantize
    if not qcfg.enabled:
        ctx.console.print("quantize: disabled (quantize.enabled: false)")
        return {"enabled": False}
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    logging.getLogger("optimum").setLevel(logging.ERROR)
    isa = int8_isa() if qcfg.isa == "auto" else qcfg.isa
    qconfig = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=qcfg.per_channel)
    source = ctx.stage_dir("export") / "student"
    out = ctx.out / "student-int8"
    with ctx.console.status(f"quantizing the student to int8 ({isa}, dynamic)"):
        quantizer = ORTQuantizer.from_pretrained(source, file_name="model.onnx")
        quantizer.quantize(save_dir=out, quantization_config=qconfig)
    os.replace(out / "model_quantized.onnx", out / "model.onnx")
    fp32, int8 = (source / "model.onnx").stat().st_size, (out / "model.onnx").stat().st_size
    ctx.console.print(f"quantize: {fp32 / 1e6:.1f} MB -> {int8 / 1e6:.1f} MB ({isa}, per_channel={qcfg.per_channel})")
    return {"enabled": True, "method": qcfg.method, "isa": isa, "per_channel": qcfg.per_channel,
            "fp32_bytes": fp32, "int8_bytes": int8}
