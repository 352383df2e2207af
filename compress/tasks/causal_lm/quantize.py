"""Quantize a causal LM: dynamic int8 of the ONNX student with its KV cache, held to a perplexity budget.
                                                                               -> quantize/<variant>/"""

from __future__ import annotations

import shutil

import numpy as np

from compress.envinfo import int8_isa
from compress.errors import CompressError
from compress.io import write_json
from compress.layout import ONNX_FILE, PARITY_FILE, VARIANTS_FILE
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
        settings = Settings("dynamic", per_channel=bool(v.per_channel), reduce_range=reduce_range_for(isa))
        with ctx.console.status(f"quantizing {v.name} (ONNX Runtime dynamic int8)"):
            quantize_dynamic(source, folder / ONNX_FILE, settings)
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
                                "per_channel: true")
        records.append({"name": v.name, "method": v.method, "status": "produced", "per_channel": settings.per_channel,
                        "reduce_range": settings.reduce_range, "perplexity": ppl["perplexity"],
                        "parent_perplexity": parent["perplexity"], "increase_percent": round(increase, 3),
                        "budget_percent": v.budget, "judged_on": f"{len(rows)} training rows", "parity": parity_rows,
                        "greedy_equal_to_torch": f"{sum(greedy)}/{len(greedy)}"})
        manifest.append({"name": v.name, "path": f"{v.name}/model.onnx", "parent": "student-onnx", "method": v.method,
                         "precision": "int8", "format": "onnx"})
    write_json(ctx.out / VARIANTS_FILE, manifest)
    return {"enabled": True, "isa": isa, "variants": records}
