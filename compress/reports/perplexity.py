"""report.md of a perplexity report (a causal LM's run): perplexity and generation speed of every variant, the
parity and greedy checks, what distillation bought, side-by-side generations."""

from __future__ import annotations

from compress.records import Report


def markdown(report: Report) -> str:
    q, evaluation, distill = report.get("query"), report.get("eval"), report.get("distill")
    quantized = report.get("quantize").get("variants", [])
    lines = [f"# compress report: {report.name} (causal language model)", "",
             f"Perplexity on {evaluation['tokens']:,} held-out tokens ({evaluation['text']}); retention = teacher "
             f"perplexity / variant perplexity. Generation at batch 1, greedy through the KV cache: a {q['prompt_tokens']}-token "
             f"prompt, then {q['new_tokens']} new tokens, {q['runs']} timed runs after warm-up, each variant in a fresh "
             f"process on {report.environment['cpu']} (cpu: all cores; mobile: one thread, ONNX only). Distillation: "
             f"{distill['divergence']}, T={distill['temperature']}, alpha={distill['alpha']}; "
             f"tokenizer preflight: {distill['preflight']['mode']}.", "",
             "| variant | format | precision | parameters | size (MB) | perplexity | retention | difference | "
             "first token (ms) | tokens/s | peak memory (MiB) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v in report.variants:
        def num(x, f):
            return f.format(x) if x is not None else "-"
        lines.append(f"| {v.name} | {v.format} | {v.precision} | {v.parameters / 1e6:.1f}M | "
                     f"{v.size_bytes / 1e6:.1f} | {v.perplexity:.3f} | {v.perplexity_retention:.1%} | "
                     f"{v.get('perplexity_difference'):+.3f} | {num(v.time_to_first_token_ms, '{:.1f}')} | "
                     f"{num(v.tokens_per_second, '{:.1f}')} | {num(v.peak_memory_bytes and v.peak_memory_bytes / 2**20, '{:.0f}')} |")
    for name, g in report.get("distillation_gain").items():
        verdict = "better" if g["better"] else "NOT better"
        lines += ["", f"Distillation gain, {name}: perplexity {g['student_perplexity']:.3f} against "
                  f"{g['baseline_perplexity']:.3f} ({g['difference']:+.3f}, {g['relative']:+.1%}): the distilled student is "
                  f"{verdict}."]
    mobile = [v for v in report.variants if "mobile" in v.measurements]
    if mobile:
        lines += ["", "## mobile target (one thread, ONNX Runtime)", "", "| variant | first token (ms) | tokens/s | peak memory (MiB) |",
                  "|---|---:|---:|---:|"]
        for v in mobile:
            m = v.measurements["mobile"]  # by target case: the case's name is the key
            lines.append(f"| {v.name} | {m.time_to_first_token_ms.p50:.1f} | {m.tokens_per_second:.1f} | "
                         f"{m.peak_rss_bytes / 2**20:.0f} |")
    for t, why in report.get("not_measured").items():
        lines += ["", f"Not measured on {t}: {why}."]
    lines += ["", "## Greedy generations from the same held-out prompts", ""]
    for i, p in enumerate(report.get("prompts")):
        lines += [f"### Prompt {i + 1}", "", "```", p, "```", "", "| variant | continuation |", "|---|---|"]
        for v in report.variants:
            cont = v.get("generations")[i].replace("|", "\\|").replace("\n", "⏎")
            lines.append(f"| {v.name} | {cont} |")
        lines.append("")
    lines += ["## Export parity (ONNX Runtime with the KV cache against PyTorch fp32, held-out text)", "",
              "| variant | shape | max abs diff | top-1 agreement | cosine | tolerance | ok |", "|---|---|---:|---:|---:|---|---|"]
    checks = [r for rows in report.get("export_parity").values() for r in rows]
    checks += [r for v in quantized for r in v["parity"]]
    for r in checks:
        lines.append(f"| {r['variant']} | {r['shape']} | {r['max_abs_diff']:.2e} | {r['top1_agreement']:.1%} | "
                     f"{r['cosine']:.6f} | {r['tolerance']} | {'ok' if r['ok'] else 'FAIL'} |")
    for name, greedy in report.get("greedy_parity").items():
        lines += ["", f"Greedy tokens, {name}-onnx against PyTorch generate: {sum(g['equal'] for g in greedy)}/{len(greedy)} "
                  "prompts identical."]
    for v in quantized:
        lines += ["", f"{v['name']}: {_method(v)}, perplexity {v['increase_percent']:+.2f}% against "
                  f"student-onnx on {v['judged_on']} (budget {v['budget_percent']:g}%); greedy tokens equal to PyTorch fp32 on "
                  f"{v['greedy_equal_to_torch']} prompts."]
    lines += ["", "Stage wall times (s): " + ", ".join(f"{k} {v}" for k, v in report.stage_seconds.items()), ""]
    return "\n".join(lines)


def _method(v: dict) -> str:
    """How a causal-LM variant was quantized, and (int4) the bytes it stores in each precision."""
    if v.get("precision") == "int4":
        mb = ", ".join(f"{k} {w['bytes'] / 1e6:.1f} MB" for k, w in v["weights"].items())
        return (f"int4 weights (MatMulNBits blocks of {v['block_size']}, {'symmetric' if v['symmetric'] else 'asymmetric'}, "
                f"accuracy level {v['accuracy_level']}; output layer dynamic int8; word embeddings int4: {mb})")
    return (f"dynamic int8 ({'per-channel' if v['per_channel'] else 'per-tensor'}"
            f"{', 7-bit weights' if v['reduce_range'] else ''})")
