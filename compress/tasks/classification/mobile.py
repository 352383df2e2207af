"""Mobile: the shipped model in ORT format (``model.ort``) for ONNX Runtime Mobile.

The conversion is ONNX Runtime's own (``onnxruntime.tools.convert_onnx_models_to_ort``): it bakes
graph optimizations into the file, so the ORT-format model is checked against the ``.onnx`` it came
from on real sentences at several shapes, and a difference beyond ``mobile.atol`` fails the run.
ONNX Runtime's mobile usability checker then estimates how much of the model NNAPI (Android) and
CoreML (iOS) could run; its findings are kept as data, not as the pages of log it prints.
"""

from __future__ import annotations

from compress import parity
from compress.errors import CompressError
from compress.layout import ORT_FILE, PARITY_FILE
from compress.parity import load_reference
from compress.tasks.classification.ort import EXECUTION_PROVIDERS, convert, mobile_package, usability_check

NAME = "mobile"
DEPENDS = ("export", "quantize")
CONFIG = ("mobile", "ship.variant")
# (key in the metrics, name in ONNX Runtime's messages, the table of supported operators it reads)


def run(cfg, ctx) -> dict:
    mcfg = cfg.mobile
    if not mcfg.enabled:
        ctx.console.print("mobile: disabled (mobile.enabled: false)")
        return {"enabled": False}

    source = ctx.layout.onnx_variant(cfg.ship.variant)
    if not source.is_file():
        raise CompressError(f"mobile: {source} not found: ship.variant {cfg.ship.variant} was not produced by the "
                            f"quantize stage (see its messages above); ship student-onnx or a variant this machine can make")
    with ctx.console.status(f"converting {cfg.ship.variant} to ORT format"):
        ort_path, operators = convert(source, ctx.out, mcfg.optimization_level, mcfg.optimization_style,
                                      mcfg.target_platform)
    ctx.console.print(f"mobile: {ORT_FILE} {ort_path.stat().st_size / 1e6:.2f} MB from {cfg.ship.variant} "
                      f"{source.stat().st_size / 1e6:.2f} MB (optimization level {mcfg.optimization_level}, "
                      f"{mcfg.optimization_style}, for {mcfg.target_platform})")
    # the inputs every other check ran at; the .onnx it was converted from is the reference
    inputs, _ = load_reference(ctx.layout.export_dir("student") / PARITY_FILE)
    checks = parity.check(ORT_FILE, inputs, parity.onnx_outputs(source, inputs), parity.onnx_outputs(ort_path, inputs),
                          parity.Tolerance(atol=mcfg.atol))
    parity.print_checklist(ctx.console, f"{ORT_FILE} vs the .onnx of {cfg.ship.variant}", checks)
    bad = [c for c in checks if not c["ok"]]
    if bad:
        raise CompressError(*(f"mobile: {ORT_FILE} logits differ from {source} by {c['max_abs_diff']:.3g} at "
                              f"{c['shape']} (mobile.atol {mcfg.atol:g}); convert with mobile.optimization_level: basic "
                              f"or ship the .onnx with mobile.enabled: false" for c in bad))
    with ctx.console.status("ONNX Runtime mobile usability check (NNAPI, CoreML)"):
        usability = usability_check(source)
    for key, label, _ in EXECUTION_PROVIDERS:
        ep = usability["execution_providers"][key]
        fixed = ep.get("with_fixed_shapes")
        then = (f"; with fixed input shapes {fixed['partitions']} partitions, {fixed['supported_nodes']}/{fixed['nodes']} "
                f"nodes, {fixed['suitability']}") if fixed else ""
        ctx.console.print(f"mobile: {label}: {ep['partitions']} partitions, {ep['supported_nodes']}/{ep['nodes']} nodes "
                          f"supported, suitability {ep['suitability']}{then}")
    return {
        "enabled": True,
        "variant": cfg.ship.variant,
        "source": str(source),
        "ort_file": str(ctx.layout.ort_model),  # where it will be once the stage is finished
        "ort_bytes": ort_path.stat().st_size,
        "onnx_bytes": source.stat().st_size,
        "optimization_level": mcfg.optimization_level,
        "optimization_style": mcfg.optimization_style,
        "target_platform": mcfg.target_platform,
        "atol": mcfg.atol,
        "parity": checks,
        "required_operators": operators,
        "mobile_package": mobile_package(operators),
        "usability": usability,
    }


# ----------------------------------------------------------------------------- conversion


# ----------------------------------------------------------------------------- NNAPI / CoreML


