"""Quantize a causal LM: dynamic int8 (onnx_dynamic) or weight-only int4 (onnx_int4: the blocks' MatMuls and the
word embeddings in int4, the output layer in int8) of the ONNX student with its KV cache, held to a perplexity
budget.                                                                        -> quantize/<variant>/"""

from __future__ import annotations

import shutil

import numpy as np

from compress.envinfo import int8_isa
from compress.errors import CompressError
from compress.io import write_json
from compress.layout import ONNX_FILE, PARITY_FILE, VARIANTS_FILE
from compress.quant.onnx_int4 import Int4Settings, composition, quantize_int4
from compress.quant.onnx_int8 import Settings, quantize_dynamic, reduce_range_for
from compress.tasks.causal_lm import lm, onnxlm
from compress.tasks.causal_lm.checks import greedy_check, logits_parity, print_rows
from compress.tasks.causal_lm.text import load_text, train_rows

NAME = "quantize"
DEPENDS = ("export", "distill")
CONFIG = ("quantize", "data", "bench.threads", "export.greedy_prompts", "export.greedy_tokens")
BUDGET_ROWS = 64  # training rows the int8 perplexity budget is judged on (never the held-out text)


def run(cfg, ctx) -> dict:
    qcfg = cfg.quantize
    if not qcfg.enabled:
        ctx.console.print("quantize: disabled (quantize.enabled: false)")
        write_json(ctx.out / VARIANTS_FILE, [])
        return {"enabled": False}
    isa = int8_isa() if qcfg.isa == "auto" else qcfg.isa
    source_dir = ctx.layout.export_dir("student")
    source = source_dir / ONNX_FILE
    model, tok = lm.load_saved(ctx.layout.model("distill"))
    text = load_text(cfg)
    rows = train_rows(cfg, tok, text).input_ids[: min(qcfg.accuracy_samples, BUDGET_ROWS)]
    parent = onnxlm.perplexity(onnxlm.Decoder(source, threads=cfg.bench.threads).logits, rows, tok.pad_token_id)
    with np.load(source_dir / PARITY_FILE) as z:
        names = [str(n) for n in z["names"]]
        inputs = [(n, z[f"ids{i}"], z[f"mask{i}"]) for i, n in enumerate(names)]
        reference = [z[f"ref{i}"] for i in range(len(names))]
    records, manifest = [], []
    for v in qcfg.variants:
        folder = ctx.out / v.name
        folder.mkdir(parents=True)
        record, weights = make(v, source, folder / ONNX_FILE, isa, ctx)
        for f in source_dir.iterdir():  # tokenizer and config beside the graph
            if f.is_file() and f.suffix != ".onnx" and f.name != "parity.npz":
                shutil.copy2(f, folder / f.name)
        dec = onnxlm.Decoder(folder / ONNX_FILE, threads=cfg.bench.threads)
        ppl = onnxlm.perplexity(dec.logits, rows, tok.pad_token_id)
        increase = (ppl["perplexity"] / parent["perplexity"] - 1) * 100
        parity_rows = logits_parity(v.name, dec, inputs, reference, None)
        print_rows(ctx, f"{v.name} vs PyTorch fp32 (reported; the gate is the perplexity budget)", parity_rows)
        greedy = [g["equal"] for g in greedy_check(cfg, model, tok, dec, text.eval)]
        ctx.console.print(f"quantize: {v.name} perplexity {ppl['perplexity']:.3f} vs student-onnx {parent['perplexity']:.3f} "
                          f"on {len(rows)} training rows ({increase:+.2f}%, budget {v.budget:g}%); greedy tokens equal to "
                          f"PyTorch fp32 on {sum(greedy)}/{len(greedy)} prompts; {(folder / 'model.onnx').stat().st_size / 1e6:.1f} MB")
        if increase > v.budget:
            raise CompressError(f"quantize.variants: {v.name} raises the perplexity by {increase:.2f}% against "
                                f"student-onnx on {len(rows)} training rows, over its budget of {v.budget:g}% (for causal-lm "
                                "the budget is a relative perplexity increase in percent); raise the budget or try "
                                + ("a smaller block_size, or onnx_dynamic" if v.method == "onnx_int4" else "per_channel: true"))
        records.append({"name": v.name, "method": v.method, "status": "produced", **record, "weights": weights,
                        "perplexity": ppl["perplexity"],
                        "parent_perplexity": parent["perplexity"], "increase_percent": round(increase, 3),
                        "budget_percent": v.budget, "judged_on": f"{len(rows)} training rows", "parity": parity_rows,
                        "greedy_equal_to_torch": f"{sum(greedy)}/{len(greedy)}"})
        manifest.append({"name": v.name, "path": f"{v.name}/model.onnx", "parent": "student-onnx", "method": v.method,
                         "precision": record["precision"], "format": "onnx"})
    write_json(ctx.out / VARIANTS_FILE, manifest)
    return {"enabled": True, "isa": isa, "variants": records}


def make(v, source, target, isa: str, ctx) -> tuple[dict, dict]:
    """Quantize ``source`` to ``target`` as variant ``v`` says: (its settings for the record, the bytes of its
    weights by how they are stored)."""
    reduce_range = reduce_range_for(isa)
    if v.method == "onnx_int4":
        s = Int4Settings(block=v.block_size, symmetric=v.symmetric, accuracy_level=v.accuracy_level,
                         reduce_range=reduce_range)
        with ctx.console.status(f"quantizing {v.name} (int4 MatMulNBits blocks, int8 output layer, int4 embeddings)"):
            try:
                weights = quantize_int4(source, target, s)
            except ModuleNotFoundError as exc:  # onnxruntime's MatMulNBitsQuantizer imports onnx_ir
                raise CompressError(f"quantize.variants: {v.name} (onnx_int4) needs the Python package {exc.name} "
                                    "(pip install onnx-ir)") from None
            except ValueError as exc:  # a tied graph (an export older than untying), no logits MatMul, a width
                raise CompressError(f"quantize.variants: {v.name} (onnx_int4): {exc}; {source}") from None  # not in blocks
        return {"precision": "int4", "block_size": s.block, "symmetric": s.symmetric,
                "accuracy_level": s.accuracy_level, "reduce_range": reduce_range,
                "layout": {"int4": "the blocks' MatMuls (MatMulNBits) and the word embeddings (GatherBlockQuantized)",
                           "int8": "the output layer (dynamic int8 per channel, MatMulInteger)",
                           "fp32": "norms and every other initializer"}}, weights
    settings = Settings("dynamic", per_channel=bool(v.per_channel), reduce_range=reduce_range)
    with ctx.console.status(f"quantizing {v.name} (ONNX Runtime dynamic int8)"):
        quantize_dynamic(source, target, settings)
    return {"precision": "int8", "per_channel": settings.per_channel, "reduce_range": reduce_range}, composition(target)
