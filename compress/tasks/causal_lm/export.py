"""Export a causal LM: teacher and student to ONNX with the KV cache; logits parity at several lengths (with
and without the cache) and greedy tokens equal to PyTorch's generate on held-out prompts, or the stage fails.
                                                                                 -> export/<model>/"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from compress.errors import CompressError
from compress.layout import PARITY_FILE
from compress.quant.onnx_int4 import output_weights
from compress.tasks.causal_lm import lm, onnxlm
from compress.tasks.causal_lm.checks import greedy_check, logits_parity, parity_inputs, print_rows
from compress.tasks.causal_lm.text import load_text

NAME = "export"
DEPENDS = ("teacher", "distill")
CONFIG = ("export", "data")
VERSION = 2  # 2: tied decoders exported untied (an older export reran, so onnx_int4 finds its own output weight)


def run(cfg, ctx) -> dict:
    text = load_text(cfg)
    results = {}
    sources = [("teacher", ctx.layout.model("teacher"))] if cfg.export.teacher else []
    for name, folder in sources + [("student", ctx.layout.model("distill"))]:
        out = ctx.out / name
        model, tok = lm.load_saved(folder)
        untied = lm.untie(model)
        with tempfile.TemporaryDirectory(prefix="untied-") as tmp, \
                ctx.console.status(f"exporting {name} to ONNX with its KV cache ({onnxlm.TASK})"):
            if untied:  # the output layer shared the embedding matrix: export a copy with its own weight
                model.save_pretrained(tmp, safe_serialization=True)
                tok.save_pretrained(tmp)
            path = onnxlm.export(Path(tmp) if untied else folder, out, cfg.export.opset)
        tables = output_weights(path)
        if tables["shared"]:
            raise CompressError(f"export: {name}-onnx reads its output layer from the embedding table "
                                f"{tables['embedding']!r} (tied weights); {path}")
        if untied:
            ctx.console.print(f"export: {name} ties its output layer to the word embeddings; exported with its own "
                              f"copy ({tables['embedding']} and {tables['output']})")
        inputs = parity_inputs(tok, text.eval, cfg.data.max_length)
        reference = [onnxlm.torch_logits_fn(model)(ids, mask) for _, ids, mask in inputs]
        np.savez(out / PARITY_FILE, names=np.array([n for n, _, _ in inputs]),
                 **{f"{k}{i}": a for i, (_, ids, mask) in enumerate(inputs) for k, a in (("ids", ids), ("mask", mask))},
                 **{f"ref{i}": r for i, r in enumerate(reference)})
        dec = onnxlm.Decoder(path)
        rows = logits_parity(f"{name}-onnx", dec, inputs, reference, cfg.export.atol)
        print_rows(ctx, f"{name}-onnx (export, KV cache) vs PyTorch fp32, held-out text", rows)
        greedy = greedy_check(cfg, model, tok, dec, text.eval)
        ctx.console.print(f"greedy: {name}-onnx {sum(g['equal'] for g in greedy)}/{len(greedy)} prompts give PyTorch's "
                          f"generate tokens exactly ({cfg.export.greedy_tokens} new tokens each, through the KV cache)")
        bad = [f"export: {r['variant']} at {r['shape']}: {'; '.join(r['problems'])}; {path}" for r in rows if not r["ok"]]
        bad += [f"export: {name}-onnx greedy tokens differ from PyTorch's on prompt {i} ({g['prompt']!r}) from token "
                f"{g['first_difference']}; {path}" for i, g in enumerate(greedy) if not g["equal"]]
        if bad:
            raise CompressError(*bad)
        results[name] = {"untied": untied, "parity": rows, "greedy": greedy, "inputs": [i.name for i in dec.sess.get_inputs()],
                         "onnx_bytes": path.stat().st_size}
        del model, dec
    return results
