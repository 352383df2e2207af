"""report.md of a perplexity report (a causal LM's run): perplexity and generation speed of every variant, the
parity and greedy checks, what distillation bought, side-by-side generations."""

from __future__ import annotations

from compress.bench import rounds
from compress.records import Report


def generation_rounds(report: Report) -> list[str]:
    """How generation speed was measured (interleaved rounds) and each flagged figure; nothing for a report.json
    from before rounds."""
    how = report.latency_rounds
    if how is None:
        return []
    lines = ["", f"Generation speed: {how.rounds} interleaved rounds (round r measures every variant once, in order, "
             "each in a fresh process); each figure is the median over rounds. Flagged noisy: the rounds' first-token "
             f"p50s or tokens/s differ by more than {how.noise_tolerance:g} of their median (bench.noise_tolerance). "
             f"Load average {(how.machine.get('before') or {}).get('load_average')} before, "
             f"{(how.machine.get('after') or {}).get('load_average')} after; CPU frequency governor "
             f"{(how.machine.get('before') or {}).get('governor', 'unknown')}."]
    flagged = [generation_flag(v.name, key, m) for v in report.variants for key, m in v.measurements.items() if m.flags]
    return lines + (["", "Flagged:", ""] + [f"- {line}" for line in flagged] if flagged else [])


def generation_flag(name: str, target: str, m) -> str:
    """``student-int8 on cpu: noisy: first token 40.1-95.3 ms, 120.4-160.0 tokens/s over 3 rounds``."""
    first, rates = m.p50_range_ms, m.get("tokens_per_second_rounds") or []
    text = f"{name} on {target}: {', '.join(rounds.label(f) for f in m.flags)}"
    if first:
        text += f": first token {first[0]:.1f}-{first[1]:.1f} ms"
    if rates:
        text += f", {min(rates):.1f}-{max(rates):.1f} tokens/s over {len(rates)} rounds"
    return text


def markdown(report: Report) -> str:
    q, evaluation, distill = report.get("query"), report.get("eval"), report.get("distill")
    quantized = report.get("quantize").get("variants", [])
    lines = [f"# compress report: {report.name} (causal language model)", "",
             f"Perplexity on {evaluation['tokens']:,} held-out tokens ({evaluation['text']}); retention = teacher "
             f"perplexity / variant perplexity. Generation at batch 1, greedy through the KV cache: a {q['prompt_tokens']}-token "
             f"prompt, then {q['new_tokens']} new tokens, {q['runs']} timed runs after warm-up in each round, each variant in a fresh "
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
                     f"{v.get('perplexity_difference'):+.3f} | {num(v.time_to_first_token_ms, '{:.1f}')}"
                     f"{rounds.tag(v.flags)} | {num(v.tokens_per_second, '{:.1f}')}{rounds.tag(v.flags)} | "
                     f"{num(v.peak_memory_bytes and v.peak_memory_bytes / 2**20, '{:.0f}')} |")
    lines += generation_rounds(report)
    untimed = [v for v in report.variants if v.get("not_timed")]
    if untimed:
        lines += ["", f"Not timed: {', '.join(v.name for v in untimed)} ({untimed[0].get('not_timed')})."]
    for name, g in report.get("distillation_gain").items():
        verdict = "better" if g["better"] else "NOT better"
        lines += ["", f"Distillation gain, {name}: perplexity {g['student_perplexity']:.3f} against "
                  f"{g['baseline_perplexity']:.3f} ({g['difference']:+.3f}, {g['relative']:+.1%}): the distilled student is "
                  f"{verdict}."]
    if report.get("scores"):
        lines += [""] + scores_markdown(report.get("scores"))
    mobile = [v for v in report.variants if "mobile" in v.measurements]
    if mobile:
        lines += ["", "## mobile target (one thread, ONNX Runtime)", "", "| variant | first token (ms) | tokens/s | peak memory (MiB) |",
                  "|---|---:|---:|---:|"]
        for v in mobile:
            m = v.measurements["mobile"]  # by target case: the case's name is the key
            lines.append(f"| {v.name} | {m.time_to_first_token_ms.p50:.1f}{rounds.tag(m.flags)} | "
                         f"{m.tokens_per_second:.1f}{rounds.tag(m.flags)} | {m.peak_rss_bytes / 2**20:.0f} |")
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


NAMES = {"lambada": "LAMBADA", "hellaswag": "HellaSwag", "piqa": "PIQA", "arc_easy": "ARC-Easy"}


def _pts(d: dict) -> str:
    return f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def _ratio(w: dict) -> str:
    r = w.get("ratio")
    if not r:
        return "-"
    return f"{r['value']:.3f}" + (f" [{r['low']:.3f}, {r['high']:.3f}]" if r["low"] == r["low"] else "")  # nan: 1 window


def scores_markdown(scores: dict) -> list[str]:
    """The zero-shot tables of report.md: scores with their intervals, then paired differences against the
    teacher, then what distillation bought (compress/tasks/causal_lm/retention.py)."""
    sets, rows = scores["sets"], scores["against_teacher"]
    names = list(sets)
    wiki = scores.get("wikitext")
    lines = ["## Zero-shot scores (lm-evaluation-harness definitions)", "",
             "Items per set: " + ", ".join(f"{NAMES[n]} {sets[n]['items']} ({sets[n]['metric']})" for n in names)
             + f"; a seeded subset (seed {scores['seed']}), the same items for every variant. "
             + (f"WikiText-2: its first {next(iter(rows.values()))['wikitext']['tokens']:,} tokens in windows of "
                f"{wiki['window']}; bits per byte compare across tokenizers. " if wiki else "")
             + "Brackets: 95% intervals (Wilson for a score; paired over the same items for a difference).", "",
             "| variant | " + ("WikiText-2 ppl | bits/byte | " if wiki else "") + " | ".join(NAMES[n] for n in names)
             + " | mean |", "|---|" + ("---:|---:|" if wiki else "") + "---:|" * (len(names) + 1)]
    for name, r in rows.items():
        cells = [f"{s['value']:.3f} [{s['low']:.2f}, {s['high']:.2f}]" for s in (r["sets"][n] for n in names)]
        w = r.get("wikitext")
        lines.append(f"| {name} | " + (f"{w['perplexity']:.2f} | {w['bits_per_byte']:.3f} | " if wiki else "")
                     + " | ".join(cells) + f" | {r['mean']['value']:.3f} |")
    lines += ["", "### Against the teacher (paired differences in points; perplexity as a ratio)", "",
              "| variant | " + ("perplexity ratio | " if wiki else "") + " | ".join(NAMES[n] for n in names)
              + " | mean | retention | above chance |", "|---|" + ("---:|" if wiki else "") + "---:|" * (len(names) + 3)]
    for name, r in rows.items():
        m = r["mean"]
        lines.append(f"| {name} | " + (f"{_ratio(r['wikitext'])} | " if wiki else "")
                     + " | ".join(_pts(r["sets"][n]["paired"]) for n in names) + f" | {_pts(m['paired'])} | "
                     f"{m['retention']:.1%} [{m['retention_low']:.1%}, {m['retention_high']:.1%}] | "
                     + (f"{m['above_chance']:.1%} [{m['above_chance_low']:.1%}, {m['above_chance_high']:.1%}] |"
                        if m["above_chance"] is not None else "- |"))
    for label, g in scores.get("distillation_gain", {}).items():
        m = g["mean"]
        verdict = ("better" if m["paired"]["low"] > 0 else "worse" if m["paired"]["high"] < 0
                   else "not resolved by these items")
        text = (f"Distillation gain, {label}: mean accuracy {100 * m['paired']['difference']:+.1f} points "
                f"[{100 * m['paired']['low']:+.1f}, {100 * m['paired']['high']:+.1f}] ({verdict}); per set "
                + ", ".join(f"{NAMES[n]} {_pts(s['paired'])}" for n, s in g["sets"].items()))
        if g.get("wikitext"):
            w = g["wikitext"]
            text += (f"; WikiText-2 perplexity {w['perplexity']:.2f} against {w['reference_perplexity']:.2f}, ratio "
                     f"{_ratio(w)}")
        lines += ["", text + "."]
    return lines + [""]


def _method(v: dict) -> str:
    """How a causal-LM variant was quantized, and (int4) the bytes it stores in each precision."""
    if v.get("precision") == "int4":
        mb = ", ".join(f"{k} {w['bytes'] / 1e6:.1f} MB" for k, w in v["weights"].items())
        return (f"int4 weights (MatMulNBits blocks of {v['block_size']}, {'symmetric' if v['symmetric'] else 'asymmetric'}, "
                f"accuracy level {v['accuracy_level']}; output layer dynamic int8; word embeddings int4: {mb})")
    return (f"dynamic int8 ({'per-channel' if v['per_channel'] else 'per-tensor'}"
            f"{', 7-bit weights' if v['reduce_range'] else ''})")
