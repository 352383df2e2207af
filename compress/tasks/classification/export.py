"""Export: ONNX for teacher and student through optimum-onnx, then ONNX Runtime's transformer
optimizer, each checked against PyTorch on real evaluation inputs at several shapes.

Optimum only warns when the exported model disagrees with PyTorch; here a difference beyond
``export.atol`` (export) or ``optimize.atol`` (fused graph) fails the run, naming the shape. The
PyTorch reference logits are saved beside the graphs (``parity.npz``), so the quantize and mobile
stages hold their models to the same fp32 parent at the same inputs without loading torch.
"""

from __future__ import annotations

import logging

from compress import models, parity
from compress.data import eval_split
from compress.errors import CompressError
from compress.layout import FUSED_FILE, ONNX_FILE, PARITY_FILE
from compress.onnxgraph import optimize
from compress.parity import save_reference

NAME = "export"
VERSION = 4  # 2: fused graph and parity.npz, which quantize and mobile read; 3: residual adds as Sum;
# 4: optimize.first_token_only
DEPENDS = ("teacher", "distill", "refine", "trim")
CONFIG = ("export", "optimize", "data", "bench.sequence_length")  # the parity shapes; not the other bench settings


def run(cfg, ctx) -> dict:

    from optimum.exporters.onnx import main_export

    split = eval_split(cfg)
    texts = split.texts[: cfg.export.parity_samples]
    results = {}
    for name, folder in (("teacher", ctx.layout.model("teacher")), ("student", ctx.layout.final_student())):
        out = ctx.out / name
        with ctx.console.status(f"exporting {name} to ONNX"):
            _quiet_optimum()
            main_export(str(folder), output=out, task="text-classification", opset=cfg.export.opset,
                        do_validation=False, device="cpu")
        model, tokenizer = models.load_saved(folder)
        inputs = parity.shapes(tokenizer, texts, cfg.bench.sequence_length)
        reference = parity.torch_reference(model, inputs)
        del model
        save_reference(out / PARITY_FILE, inputs, reference)
        rows = _gate(ctx, f"{name}-onnx (export) vs PyTorch fp32", f"{name}-onnx", out / ONNX_FILE, inputs,
                     reference, parity.Tolerance(atol=cfg.export.atol), "export")
        entry = {"parity": rows}
        if cfg.optimize.enabled:
            with ctx.console.status(f"fusing the {name} graph (ONNX Runtime transformer optimizer)"):
                entry["fusions"] = optimize(out / ONNX_FILE, out / FUSED_FILE,
                                             skip_layer_norm=cfg.optimize.skip_layer_norm,
                                             first_token=cfg.optimize.first_token_only)
            fused = ", ".join(f"{k} x{v}" if k != "FirstToken" else f"last layer on the first token only ({v} ops)"
                              for k, v in entry["fusions"].items() if v) or "none"
            ctx.console.print(f"optimize: {name} fusions: {fused}")
            entry["parity"] += _gate(ctx, f"{name}-onnx (fused) vs PyTorch fp32", f"{name}-onnx fused", out / FUSED_FILE,
                                     inputs, reference, parity.Tolerance(atol=cfg.optimize.atol), "optimize")
        results[name] = entry
    return results


def _gate(ctx, title, variant, path, inputs, reference, tolerance, what) -> list[dict]:
    rows = parity.check(variant, inputs, reference, parity.onnx_outputs(path, inputs), tolerance)
    parity.print_checklist(ctx.console, title, rows)
    bad = parity.failures(rows, what, path)
    if bad:
        raise CompressError(*bad)
    return rows


def _quiet_optimum() -> None:
    for name in ("optimum", "optimum.exporters", "optimum.exporters.onnx", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
