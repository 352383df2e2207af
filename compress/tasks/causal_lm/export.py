"""Export a causal LM: teacher and student to ONNX with the KV cache; logits parity at several lengths (with
and without the cache) and greedy tokens equal to PyTorch's generate on held-out prompts, or the stage fails.
                                                                                 -> export/<model>/"""

from __future__ import annotations

import numpy as np

from compress.errors import CompressError
from compress.layout import PARITY_FILE
from compress.tasks.causal_lm import lm, onnxlm
from compress.tasks.causal_lm.checks import greedy_check, logits_parity, parity_inputs, print_rows
from compress.tasks.causal_lm.text import load_text

NAME = "export"
DEPENDS = ("teacher", "distill")
CONFIG = ("export", "data")


def run(cfg, ctx) -> dict:
    text = load_text(cfg)
    results = {}
    models = [("teacher", ctx.layout.model("teacher"))] if cfg.export.teacher else []
    for name, folder in models + [("student", ctx.layout.model("distill"))]:
        out = ctx.out / name
        with ctx.console.status(f"exporting {name} to ONNX with its KV cache ({onnxlm.TASK})"):
            path = onnxlm.export(folder, out, cfg.export.opset)
        model, tok = lm.load_saved(folder)
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
        results[name] = {"parity": rows, "greedy": greedy, "inputs": [i.name for i in dec.sess.get_inputs()],
                         "onnx_bytes": path.stat().st_size}
        del model, dec
    return results
