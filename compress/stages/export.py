"""Export: ONNX for teacher and student through optimum-onnx, then parity against PyTorch.

Optimum only warns when the exported model disagrees with PyTorch; here a difference
beyond ``export.atol`` on real evaluation sentences fails the run, naming the shape.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from compress import models, onnxrun
from compress.data import eval_split
from compress.errors import CompressError
from compress.stages.trim import final_student

NAME = "export"
DEPENDS = ("teacher", "distill", "trim")
CONFIG = ("export", "data", "bench")


def run(cfg, ctx) -> dict:
    from optimum.exporters.onnx import main_export

    split = eval_split(cfg)
    texts = split.texts[: cfg.export.parity_samples]
    results = {}
    for name, folder in (("teacher", ctx.stage_dir("teacher") / "model"), ("student", final_student(ctx))):
        out = ctx.out / name
        with ctx.console.status(f"exporting {name} to ONNX"):
            _quiet_optimum()
            main_export(str(folder), output=out, task="text-classification", opset=cfg.export.opset,
                        do_validation=False, device="cpu")
        model, tokenizer = models.load_saved(folder)
        checks = parity(model, tokenizer, out / "model.onnx", texts, cfg.bench.sequence_length)
        results[name] = checks
        for check in checks:
            ok = check["max_abs_diff"] <= cfg.export.atol
            mark = "[green]ok[/]" if ok else "[red]FAIL[/]"
            ctx.console.print(f" -[{mark}] {name} {check['shape']}: logits max diff {check['max_abs_diff']:.2e} "
                              f"(atol {cfg.export.atol:g}), top-1 agreement {check['top1_agreement']:.1%}")
        bad = [c for c in checks if c["max_abs_diff"] > cfg.export.atol]
        if bad:
            raise CompressError(*(f"export: {name} ONNX logits differ from PyTorch by {c['max_abs_diff']:.3g} at "
                                  f"{c['shape']} (export.atol {cfg.export.atol:g}); {out / 'model.onnx'}" for c in bad))
    return results


def parity(model, tokenizer, onnx_path: Path, texts: list[str], long_length: int) -> list[dict]:
    """Compare fp32 PyTorch and ONNX Runtime logits on real sentences at several shapes:
    all sentences padded to the longest, one sentence alone, one sentence padded to ``long_length``."""
    sess = onnxrun.session(onnx_path)
    model.eval()
    rows = tokenizer(texts, truncation=True, max_length=long_length)["input_ids"]
    ids, mask = onnxrun.pad(rows, tokenizer.pad_token_id)
    long_ids = np.full((1, long_length), tokenizer.pad_token_id, dtype=np.int64)
    long_mask = np.zeros((1, long_length), dtype=np.int64)
    long_ids[0, : len(rows[0])], long_mask[0, : len(rows[0])] = rows[0], 1
    shapes = [(ids, mask), (ids[:1, : len(rows[0])], mask[:1, : len(rows[0])]), (long_ids, long_mask)]
    checks = []
    for i, m in shapes:
        with torch.no_grad():
            ref = model(input_ids=torch.from_numpy(i), attention_mask=torch.from_numpy(m)).logits.float().numpy()
        got = sess.run(["logits"], onnxrun.feeds(sess, i, m))[0]
        checks.append({
            "shape": f"batch {i.shape[0]} x length {i.shape[1]}",
            "max_abs_diff": float(np.abs(ref - got).max()),
            "top1_agreement": float((ref.argmax(-1) == got.argmax(-1)).mean()),
        })
    return checks


def _quiet_optimum() -> None:
    for name in ("optimum", "optimum.exporters", "optimum.exporters.onnx", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
