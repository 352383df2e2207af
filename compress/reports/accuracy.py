"""report.md of an accuracy report (a classifier's run): the variants table, each target's table, what
distillation bought, the data checks, export and quantization details. compress/reports/html.py builds report.html
from the same pieces."""

from __future__ import annotations

from compress.bench import rounds
from compress.records import Report, Variant


def recommendation_sentence(report: Report) -> str:
    """report.md's and report.html's sentence naming the recommended variants: the smallest and the fastest
    keeping report.retention_floor of the teacher's accuracy. A pick slower than the teacher says so."""
    rec = report.get("recommended")
    if not rec:
        return ""
    floor = rec["retention_floor"]
    size, latency = rec.get("size"), rec.get("latency")
    if not size or not latency:
        return f"No variant keeps {floor:.0%} of the teacher's accuracy (report.retention_floor): nothing is recommended."

    def figures(v):
        deployed = " as deployed, one unpadded sentence at a time" if v.get("judged_at_batch1") else ""
        return (f"{v['size_bytes'] / 1e6:.1f} MB, {v['p50_ms']:.2f} ms p50, {v['retention']:.1%} of the teacher's "
                f"accuracy{deployed}{_slower(report, v['name'])}")

    if size["name"] == latency["name"]:
        return (f"Recommended: {size['name']} ({figures(size)}), both the smallest and the fastest variant that "
                f"keeps at least {floor:.0%} of the teacher's accuracy.")
    return (f"Recommended, keeping at least {floor:.0%} of the teacher's accuracy: {size['name']} where size "
            f"matters most ({figures(size)}); {latency['name']} where latency does ({figures(latency)}).")


def _slower(report: Report, name: str) -> str:
    """``; but 20x slower than the teacher`` for a variant whose p50 is above the teacher's, else ''."""
    v = report.variant(name)
    if v is None or v.speedup is None or v.speedup >= 1:
        return ""
    return f"; but {times_slower(v.speedup)} slower than the teacher"


def times_slower(speedup: float) -> str:
    """0.05 -> ``20x``, 0.8 -> ``1.2x``: how many times slower a speedup under 1 is."""
    slower = 1 / speedup if speedup > 0 else float("inf")
    return f"{slower:.1f}x" if slower < 10 else f"{slower:.0f}x"


def shipped_sentence(report: Report) -> str:
    """Which variant the bundle holds and why: ship.variant, its figures, and where it stands against the
    recommended variants. '' for a report.json from before the record (no ``shipped``)."""
    shipped = report.get("shipped")
    if not shipped:
        return ""
    if not shipped.get("enabled", True):
        return "Nothing shipped (ship.enabled: false)."
    name = shipped["variant"]
    v = report.variant(name)
    if v is None:
        return f"Shipped: {name} (ship.variant), not measured in this run."
    rec = report.get("recommended") or {}
    floor = rec.get("retention_floor")
    picks = [what for what, key in (("smallest", "size"), ("fastest", "latency"))
             if (rec.get(key) or {}).get("name") == name]
    speed = (f"{v.speedup:.2f}x the teacher's speed" if v.speedup >= 1
             else f"{times_slower(v.speedup)} slower than the teacher")
    sentence = (f"Shipped: {name}, chosen by ship.variant ({v.format} {v.precision}: {v.size_bytes / 1e6:.1f} MB, "
                f"{v.latency_ms.p50:.2f} ms p50, {speed}, {v.retention:.1%} of the teacher's accuracy)")
    if floor is None:
        return sentence + "."
    if picks:
        return sentence + f"; the {' and the '.join(picks)} variant keeping {floor:.0%} of the teacher's accuracy."
    if v.retention is None or v.retention < floor:
        return sentence + f"; it keeps less than the {floor:.0%} floor (report.retention_floor)."
    better: dict[str, list[str]] = {}  # recommended variant -> smaller, faster
    for what, key in (("smaller", "size"), ("faster", "latency")):
        better.setdefault((rec.get(key) or {}).get("name"), []).append(what)
    notes = [f"{other} is {' and '.join(words)}" + ("" if report.variant(other).format == "onnx" else
                                                    " but runs only in PyTorch (a bundle holds an ONNX model)")
             for other, words in better.items() if other and report.variant(other)]
    return sentence + f"; it keeps the {floor:.0%} floor" + "".join(f"; {n}" for n in notes) + "."


def markdown(report: Report) -> str:
    t, evaluation, distill = report.get("target"), report.get("eval"), report.get("distill")
    lines = [
        f"# compress report: {report.name}",
        "",
        f"Evaluated on {evaluation['sentences']} sentences of the `{evaluation['split']}` split. "
        f"Latency on CPU ({report.environment['cpu']}, {t['threads']} threads), batch {t['batch_size']}, sequence length "
        f"{t['sequence_length']}, after warm-up, each variant in a fresh process"
        + ("; every target's figures follow the table" if report.get("targets") else "")
        + f". Ratios are against the teacher in PyTorch fp32. Distillation: T={distill['temperature']}, "
        f"alpha={distill['alpha']}.",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "|".join("---:" if right else "---" for right in TABLE_RIGHT) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report.variants)]
    for sentence in (shipped_sentence(report), recommendation_sentence(report)):
        lines += ["", sentence] if sentence else []
    return "\n".join(lines + details_markdown(report))


TABLE_COLUMNS = ("variant", "format", "precision", "parameters", "size (MB)", "accuracy", "retention",
                 "retention 95% CI", "agreement", "speedup", "p50 (ms)", "p90 (ms)", "p99 (ms)", "peak memory (MiB)")


TABLE_RIGHT = (False, False, False, True, True, True, True, True, True, True, True, True, True, True)  # numbers right


def table_rows(variants: list[Variant]) -> list[list[str]]:
    """The cells of the variants table (report.md, report.html): one row per variant, as text."""
    rows = []
    for v in variants:
        lat = v.latency_ms
        ci = v.get("retention_ci95")
        rows.append([v.name, v.format, v.precision, f"{v.parameters / 1e6:.1f}M", f"{v.size_bytes / 1e6:.1f}",
                     f"{v.accuracy:.4f}", f"{v.retention:.1%}" if v.retention is not None else "-",
                     f"{ci[0] * 100:.1f}-{ci[1] * 100:.1f}%" if ci else "-",
                     f"{v.get('agreement_with_teacher'):.1%}",
                     rounds.speedup_text(v.speedup, v.speedup_range, v.speedup_flags), rounds.p50_text(lat.p50, v.flags),
                     f"{lat.p90:.2f}", f"{lat.p99:.2f}", f"{v.peak_memory_bytes / 2**20:.0f}"])
    return rows


TARGET_TEXT = {
    "cpu": "ONNX Runtime's CPU execution provider (PyTorch variants in torch eager)",
    "mobile": "A stand-in for one big core of a phone or a Pi-class board: the shipped variant runs as the mobile "
              "stage's `model.ort`, the other ONNX variants as their .onnx, PyTorch variants not at all",
    "gpu": "CUDA: ONNX Runtime's CUDA execution provider, PyTorch variants on cuda",
}


def case_label(case: dict) -> str:
    return f"{case['target']}, sequence length {case['sequence_length']}"


def targets_markdown(report: Report) -> list[str]:
    """A table per target of bench.targets (a row per variant and sequence length), the variant recommended
    for each of its cases, the variants it did not run and why; a skipped target with its reason."""
    if not report.get("targets"):  # a report.json from before targets
        return []
    lines = ["", "## Latency per target", ""]
    repeat = report.get("repeatability")  # a report.json from before rounds
    if repeat:
        lines += [f"Repeatability: {repeat['variant']} measured twice on {repeat['case']} in this run, each time in a "
                  f"fresh process: p50 {repeat['p50_first_ms']:.3f} ms then {repeat['p50_second_ms']:.3f} ms, "
                  f"{repeat['relative_difference']:.1%} apart ({'within' if repeat['within_10pct'] else 'NOT within'} "
                  "10%).", ""]
    for t in report.get("targets"):
        lines += [f"### {t['name']}", ""]
        if t["status"] == "skipped":
            lines += [f"Skipped: {t['reason']}.", ""]
            continue
        c0 = t["cases"][0]
        threads = f"{c0['threads']} thread{'' if c0['threads'] == 1 else 's'}" if c0["threads"] else "all cores"
        lines += [f"{TARGET_TEXT[t['name']]}. {threads.capitalize()}, batch {c0['batch_size']}; speedups are against "
                  f"{c0['reference'] or '-'} measured here.", "",
                  "| variant | sequence length | runtime | model file | p50 (ms) | p90 (ms) | p99 (ms) | throughput (seq/s) "
                  "| speedup | queries | load (s) | peak memory (MiB) |",
                  "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in t["cases"]:
            for v in report.variants:
                m = v.measurements.get(c["key"])
                if m is None:
                    continue
                lat = m.latency_ms
                speedup = rounds.speedup_text(m.speedup, m.speedup_range, m.speedup_flags)
                lines.append(f"| {v.name} | {c['sequence_length']} | {m.runtime} | `{m.get('model_file')}` | "
                             f"{rounds.p50_text(lat.p50, m.flags)} | {lat.p90:.2f} | {lat.p99:.2f} | {m.throughput:.1f} | {speedup} | "
                             f"{m.get('queries')} | {m.load_seconds:.2f} | {m.peak_memory_bytes / 2**20:.0f} |")
        for c in t["cases"]:
            rec = c.get("recommended")
            if rec:
                v = report.variant(rec["name"])
                lines += ["", f"Recommended for {case_label(c)}: {rec['name']} ({rec['p50_ms']:.2f} ms p50, "
                          f"{v.retention:.1%} of the teacher's accuracy), the fastest there keeping the retention floor."]
        if t["not_run"]:
            lines += ["", "Not run here: " + "; ".join(f"{name} ({why})" for name, why in t["not_run"].items()) + "."]
        lines.append("")
    return lines


def rounds_markdown(report: Report) -> list[str]:
    """How latency was measured (interleaved rounds, the spread, the flags, the machine's load and governor), and
    every flagged figure, one line each; nothing for a report.json from before rounds."""
    how = report.latency_rounds
    if how is None:
        return []
    before, after = how.machine.get("before", {}), how.machine.get("after", {})
    clock = how.timer
    lines = ["", "## How latency was measured", "",
             f"{how.rounds} interleaved rounds: round r measures every variant on every target case once, in order, "
             "each in a fresh process, then round r+1. A p50 is the median of the rounds' p50s; a speedup is the "
             "reference's p50 over the variant's, and the range in brackets is the per-round ratio, min-max over "
             f"rounds. Flagged noisy: the rounds' p50s differ by more than {how.noise_tolerance:g} of their median "
             f"(bench.noise_tolerance); below timer resolution: a p50 under {clock.get('floor_ms', 0) * 1000:g} "
             f"us per query ({clock.get('clock')}, smallest step {clock.get('smallest_step_s', 0) * 1e9:.0f} ns "
             "here; at that duration the timer and the Python call around the model weigh as much as the model). "
             "A speedup carries its reference's flags too.", "",
             f"Machine: load average (1, 5, 15 min) {_load(before)} before, {_load(after)} after, on "
             f"{before.get('cpus')} CPUs; CPU frequency governor {before.get('governor', 'unknown')}"
             + (f" before, {after.get('governor')} after" if after.get("governor") != before.get("governor") else "")
             + "."]
    flagged = rounds.flagged_lines(report.variants, how.noise_tolerance, report.reference)
    flagged += [f"{v.name} on {key}: {', '.join(rounds.label(f) for f in m.flags)} (p50 {m.p50_range_ms[0]:.2f}-"
                f"{m.p50_range_ms[1]:.2f} ms over rounds)"
                for v in report.variants for key, m in v.measurements.items()
                if m.flags and key != v.get("measured_on") and m.p50_range_ms]
    if flagged:
        lines += ["", "Flagged:", ""] + [f"- {line}" for line in flagged]
    return lines


def _load(state: dict) -> str:
    load = state.get("load_average")
    return ", ".join(f"{x:.2f}" for x in load) if load else "unknown"


def gain_sentences(report: Report) -> list[str]:
    """What distillation bought over each baseline, and what the refine round changed, with paired intervals."""
    out = []
    refine = report.get("refine")
    for name, gain in report.get("distillation_gain", {}).items():
        lo, hi = gain["ci95"]
        out.append(f"Distillation gain, {name}: {gain['difference'] * 100:+.2f} points of accuracy "
                   f"(95% paired bootstrap interval {lo * 100:+.2f} to {hi * 100:+.2f}; {gain['wins']} sentences won, "
                   f"{gain['losses']} lost)" + (" (the baseline has the unpruned shape)." if refine else "."))
    if refine:
        pruned = ", ".join(f"{k} {refine[k][0]} -> {refine[k][1]}" for k in ("num_attention_heads", "intermediate_size")
                           if k in refine)
        a, b = refine["parameters"]
        sentence = (f"Refined: the distilled student pruned ({pruned}; {a / 1e6:.1f}M -> {b / 1e6:.1f}M parameters) "
                    f"and distilled again, taught by the {'distilled student' if refine['taught_by'] == 'student' else 'teacher'}")
        change = refine.get("student vs student-unpruned")
        if change:
            lo, hi = change["ci95"]
            sentence += (f"; against the unpruned student: {change['difference'] * 100:+.2f} points of accuracy "
                         f"(95% paired bootstrap interval {lo * 100:+.2f} to {hi * 100:+.2f})")
        out.append(sentence + ".")
    return out


def deployed_markdown(report: Report) -> list[str]:
    """Accuracy as deployed: the shipped and the int8 variants scored one sentence at a time, unpadded, beside
    their batched figure (a report.json from before this has none: nothing is written)."""
    scored = [v for v in report.variants if v.accuracy_batch1 is not None]
    if not scored:
        return []
    shipped = (report.get("deployed") or {}).get("shipped")
    floor = (report.get("recommended") or {}).get("retention_floor")
    judged = f" The retention floor ({floor:.0%}) is judged on it." if floor else ""
    lines = ["", "## Accuracy as deployed", "",
             "A device runs one sentence at a time, unpadded. The table above scores padded batches, and dynamic int8 "
             "computes its activation ranges over the whole batch, padding included: the shipped and the int8 "
             f"variants are also scored one sentence at a time.{judged}", "",
             "| variant | accuracy (batched) | accuracy (batch 1) | 95% CI (batch 1) | retention (batch 1) | "
             "sentences answered differently |",
             "|---|---:|---:|---:|---:|---:|"]
    for v in scored:
        ci, kept = v.get("accuracy_batch1_ci95"), v.retention_batch1
        lines.append(f"| {v.name}{' (shipped)' if v.name == shipped else ''} | {v.accuracy:.4f} | {v.accuracy_batch1:.4f} | "
                     + (f"{ci[0]:.4f}-{ci[1]:.4f}" if ci else "-") + " | "
                     + (f"{kept:.1%}" if kept is not None else "-") + f" | {v.get('changed_at_batch1', '-')} |")
    return lines


def details_markdown(report: Report) -> list[str]:
    """Everything of report.md after the table and the recommendation; report.html renders the same lines."""
    lines = deployed_markdown(report) + rounds_markdown(report) + targets_markdown(report)
    for sentence in gain_sentences(report):
        lines += ["", sentence]
    lines += fusion_lines(report.get("fusions", {}))
    lines += quantization_section(report)
    lines += mobile_markdown(report.get("mobile", {}))
    lines += data_lines(report.get("data"))
    lines += ["", "Peak memory is the peak RSS of a process that loads the variant and runs it (ONNX Runtime sessions "
              "with its CPU memory arena on, enable_cpu_mem_arena=1; PyTorch variants include the torch runtime itself). "
              "Each measurement, in each round: warm-up queries, then at least bench.queries timed queries and on "
              "until bench.min_seconds have passed.", "",
              "Stage wall times (s): " + ", ".join(f"{k} {v}" for k, v in report.stage_seconds.items()), ""]
    return lines


def data_lines(data: dict | None) -> list[str]:
    """Sentences cut at data.max_length, and evaluation sentences also seen in training, per split."""
    if not data:  # a report of a run from before these counts
        return []
    parts = []
    for name in ("train", "eval", "validation"):
        split = data.get(name)
        if split:
            seen = f", {split['train_duplicates']} also in the training split" if "train_duplicates" in split else ""
            parts.append(f"{name} {split['rows']} sentences, {split['truncated']} truncated (longest "
                         f"{split['longest_tokens']} tokens){seen}")
    return ["", f"Data (data.max_length {data['max_length']} tokens): " + "; ".join(parts) + "."] + label_lines(data)


def label_lines(data: dict) -> list[str]:
    """The class names, id by id, and where they come from (the data's names, data.labels, the teacher's config)."""
    labels = data.get("labels") or {}
    if not labels.get("names"):
        return []
    if labels.get("values") == "names":
        how = "the data's names, " + ("in the order of data.labels" if labels.get("from") == "data.labels"
                                      else "sorted, as found in the training split")
    else:
        how = f"the data's integer ids, named by {labels.get('from')}"
    return ["", f"Labels ({how}): " + ", ".join(f"{i} = `{n}`" for i, n in enumerate(labels["names"])) + "."]


def fusion_lines(fusions: dict[str, dict[str, int]]) -> list[str]:
    """Which operators ONNX Runtime's transformer optimizer fused, per exported model."""
    if not fusions:
        return ["", "Graph optimization: off (optimize.enabled: false); the ONNX variants are the plain export."]
    lines = ["", "Graph optimization (ONNX Runtime's transformer optimizer; the `-onnx` variants are the fused graphs):", ""]
    for name, counts in fusions.items():
        special = {"Sum": "residual Add written as Sum x{n} (kept out of SkipLayerNormalization, "
                          "optimize.skip_layer_norm)",
                   "FirstToken": "last layer computed for the first token only, the row the classifier reads "
                                 "({n} operators; optimize.first_token_only)"}
        made = ", ".join(special[op].format(n=n) if op in special else f"{op} x{n}" for op, n in counts.items() if n)
        made = made or "nothing fused"
        lines.append(f"- {name}: {made}")
    return lines


def quantization_section(report: Report) -> list[str]:
    """The quantized variants: how each was made, its accuracy budget and fallback ladder, and the
    parity checklist of every ONNX and quantized variant against the fp32 PyTorch parent."""
    q = report.get("quantize", {})
    if not q.get("enabled") or "variants" not in q:  # off, or a report.json older than quantize.variants
        return []
    vnni = ("with VNNI: int8 products accumulate in int32, weights keep all 8 bits" if q["vnni"]
            else "without VNNI: int8 products are summed in int16, so weights keep 7 bits (reduce_range)")
    lines = ["", "## Quantization", "",
             f"int8 settings chosen for `{q['isa']}` ({vnni}). Each variant's accuracy budget is judged against its "
             f"fp32 parent on {q['held_out']['source']} ({q['held_out']['rows']} rows, never the evaluation split"
             + (f"; {q['held_out']['batch']}" if q["held_out"].get("batch") else "") + "); "
             "over budget, an ONNX int8 variant walks a ladder (per-channel, then the most sensitive nodes kept in fp32, "
             "then dynamic) and keeps the fastest setting inside the budget.", "",
             "| variant | method | kept setting | graph | held-out accuracy | parent | drop (points) | budget | latency (ms) |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    produced = [v for v in q["variants"] if v["status"] == "produced"]
    for v in produced:
        method = v["method"]
        if v.get("engine"):  # torch_dynamic: which library, and whether the int8 weights are on disk
            kept = "int8 safetensors" if v["storage"] == "safetensors" else "re-quantized from the fp32 student at load"
            method += f" ({v['engine']}, {kept})"
        lines.append(f"| {v['name']} | {method} | {v['kept_rung']}: {v['settings']['describe']} | {v.get('graph') or '-'} | "
                     f"{v['accuracy']:.4f} | {v['parent_accuracy']:.4f} ({v['parent']}) | {v['drop_points']:+.2f} | "
                     f"{v['budget']:g} | {v['latency_ms']:.2f} |")
    for v in q["variants"]:
        if v["status"] == "skipped":
            lines += ["", f"Skipped: {v['name']} ({v['method']}): {v['reason']}."]
    for v in produced:
        if "calibration" in v:
            c = v["calibration"]
            lines += ["", f"{v['name']}: calibrated ({c['method']}) on {c['samples']} sentences of the {c['from']}, "
                      f"padded to {c['width']} tokens; sha256 of their token ids `{c['sha256']}`."]
        if v.get("fused_graph_not_used"):
            lines += ["", f"{v['name']}: static quantization of the fused graph was not possible "
                      f"({v['fused_graph_not_used']}); the unfused export was quantized instead."]
        if len(v["ladder"]) > 1:
            lines += ["", f"Ladder of {v['name']}:", "", "| rung | settings | accuracy | drop (points) | latency (ms) | parity | kept |",
                      "|---|---|---:|---:|---:|---|---|"]
            for r in v["ladder"]:
                acc = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "-"
                drop = f"{r['drop_points']:+.2f}" if r["drop_points"] is not None else "-"
                lat = f"{r['latency_ms']:.2f}" if r["latency_ms"] is not None else "-"
                ok = "ok" if r["parity_ok"] else ("; ".join(r["problems"]) or "-")
                lines.append(f"| {r['rung']} | {r['settings']['describe']} | {acc} | {drop} | {lat} | {ok} | "
                             f"{'yes' if r['kept'] else ''} |")
    checks = [(f"{name}-onnx", row) for name, rows in report.get("export_parity", {}).items() for row in rows]
    checks += [(v["name"], row) for v in produced for row in v["parity"]]
    if checks:
        lines += ["", "Parity against the fp32 PyTorch parent, at the shapes the export saved:", "",
                  "| variant | shape | max abs diff | top-1 agreement | cosine | tolerance | ok |",
                  "|---|---|---:|---:|---:|---|---|"]
        for name, r in checks:
            label = f"{name} ({r['variant'].split()[-1]})" if r.get("variant", "").endswith("fused") else name
            lines.append(f"| {label} | {r['shape']} | {r['max_abs_diff']:.2e} | {r['top1_agreement']:.1%} | "
                         f"{r['cosine']:.6f} | {r['tolerance']} | {'ok' if r['ok'] else 'FAIL'} |")
    return lines


def mobile_markdown(section: dict) -> list[str]:
    """The ORT-format (mobile) section of report.md: size, parity with the .onnx, what NNAPI and CoreML could run."""
    if not section.get("enabled"):
        return []
    lines = ["", "## ORT format (ONNX Runtime Mobile)", "",
             f"`model.ort` {section['ort_bytes'] / 1e6:.2f} MB, converted from {section['variant']} "
             f"({section['onnx_bytes'] / 1e6:.2f} MB .onnx) with optimization level {section['optimization_level']}, "
             f"{section['optimization_style']} style, for {section['target_platform']}. Logits against the .onnx "
             f"(atol {section['atol']:g}):", ""]
    for c in section["parity"]:
        mark = "ok" if c["max_abs_diff"] <= section["atol"] else "FAIL"
        lines.append(f"- {mark}: {c['shape']}, max diff {c['max_abs_diff']:.2e}, top-1 agreement "
                     f"{c['top1_agreement']:.1%}, cosine {c['cosine']:.6f}")
    lines += ["", "ONNX Runtime's mobile usability check (nodes an execution provider could take, as the model is"
              + (f"; inputs {', '.join(section['dynamic_inputs'])} have dynamic shapes):" if section["dynamic_inputs"] else "):"),
              "", "| execution provider | partitions | nodes supported | suitability | with fixed shapes | unsupported ops |",
              "|---|---:|---:|---|---|---|"]
    for ep in section["execution_providers"].values():
        fixed = ep.get("with_fixed_shapes")
        fixed_text = (f"{fixed['partitions']} partitions, {fixed['supported_nodes']}/{ep['nodes']} nodes, {fixed['suitability']}"
                      if fixed else "-")
        ops = ", ".join(op.removeprefix("ai.onnx:") for op in ep["unsupported_ops"]) or "none"
        lines.append(f"| {ep['name']} | {ep['partitions']} | {ep['supported_nodes']}/{ep['nodes']} | {ep['suitability']} | "
                     f"{fixed_text} | {ops} |")
    advice = ("NNAPI or CoreML may help: compare them with the CPU execution provider on the device."
              if section["try_nnapi_or_coreml"] else "ONNX Runtime rates NNAPI and CoreML unsuitable for this model (too "
              "many partitions, or too few nodes supported): use the CPU execution provider.")
    package = section["mobile_package"]
    if package.get("checked"):
        advice += (" The reduced mobile package runs every operator." if package["usable"] else
                   f" Operators missing from the reduced mobile package: {', '.join(package['ops_not_in_package'])}.")
    return lines + ["", advice]
