"""The summary of a sweep (compress/sweep.py), from its points' report.json files: ``sweep.json`` (the source
of truth), ``sweep.md`` (the table, accuracy by temperature) and ``sweep.html`` (self-contained: the same
lines, with the retention-against-size frontier across points and the temperature curve as inline SVG).

A point's accuracy is its distilled student's (PyTorch fp32: what distillation made, before quantization);
its size and p50 latency are those of its deployed variant: the first ONNX int8 variant when the run
quantizes, else the fp32 ONNX graph.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from compress.config.sweep import label
from compress.io import write_json, write_text
from compress.layout import SWEEP_HTML, SWEEP_JSON, SWEEP_MD, RunLayout
from compress.records import Report, Variant, read_report
from compress.reports import plots
from compress.reports.html import markdown_html, page

TEMPERATURE = "distill.temperature"
FINISHED = ("done", "kept")
STUDENT_SIZE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
ALPHA_STYLES = ("-", "--", "-.", (0, (1, 1)))


def write(sweep_dir: Path, cfg, pipeline: Path, overrides: list[str], records: list[dict], seconds: float) -> dict:
    summary = build(cfg, pipeline, overrides, records, seconds)
    write_json(sweep_dir / SWEEP_JSON, summary)
    write_text(sweep_dir / SWEEP_MD, "\n".join(markdown(summary)) + "\n")
    write_text(sweep_dir / SWEEP_HTML, render(summary))
    return summary


def build(cfg, pipeline: Path, overrides: list[str], records: list[dict], seconds: float) -> dict:
    points, teacher, evaluation = [], None, None
    for r in records:
        report_path = RunLayout(Path(r["run_dir"])).report_json
        if r["status"] in FINISHED and report_path.is_file():
            report = read_report(report_path)
            teacher = teacher or _teacher(report)
            evaluation = evaluation or report.get("eval")
            r = {**r, **figures(report)}
        points.append(r)
    return {
        "name": cfg.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pipeline": str(pipeline),
        "command_overrides": overrides,
        "budget_minutes": cfg.sweep.budget_minutes,
        "wall_seconds": seconds,
        "eval": evaluation,
        "teacher": teacher,
        "points": points,
        "frontier": frontier(points, teacher),
    }


def _teacher(report: Report) -> dict:
    t, onnx = report.variant(report.reference), report.variant("teacher-onnx")
    return {"accuracy": t.accuracy, "accuracy_ci95": t.get("accuracy_ci95"), "parameters": t.parameters,
            "size_bytes": t.size_bytes, "p50_ms": t.latency_ms.p50,
            "onnx_size_bytes": onnx.size_bytes if onnx else None, "onnx_p50_ms": onnx.latency_ms.p50 if onnx else None}


def figures(report: Report) -> dict:
    """What the sweep keeps of one point's report.json."""
    student = report.variant("student")
    onnx = [v for v in report.variants if v.role == "student" and v.format == "onnx"]
    int8 = [v for v in onnx if v.precision == "int8"]
    deployed = (int8 or onnx or [student])[0]

    def short(v: Variant) -> dict:
        return {"name": v.name, "precision": v.precision, "size_bytes": v.size_bytes, "accuracy": v.accuracy,
                "accuracy_ci95": v.get("accuracy_ci95"), "retention": v.retention, "p50_ms": v.latency_ms.p50}

    distill = report.get("distill") or {}
    return {
        "temperature": distill["temperature"], "alpha": distill["alpha"],
        "student": describe_student(report.get("student") or {}, report.get("refine")), "parameters": student.parameters,
        "accuracy": student.accuracy, "accuracy_ci95": student.get("accuracy_ci95"), "retention": student.retention,
        "teacher_accuracy": report.variant(report.reference).accuracy,
        "variant": deployed.name, "size_bytes": deployed.size_bytes, "variant_accuracy": deployed.accuracy,
        "variant_retention": deployed.retention, "p50_ms": deployed.latency_ms.p50,
        "variants": [short(v) for v in onnx],
        "distill_seconds": report.stage_seconds.get("distill"),
    }


def describe_student(info: dict, refine: dict | None = None) -> str:
    """layers 0, 2, 4 of the teacher -> "3 layers (0, 2, 4)"; a config student -> "4 layers x 256"; refined by
    the refine stage -> "3 layers (0, 2, 4), refined to 6 heads, 768 feed-forward"."""
    if info.get("method") == "layers" and info.get("layers") is not None:
        text = f"{len(info['layers'])} layers ({', '.join(map(str, info['layers']))})"
    elif info.get("method") == "config":
        text = f"{info.get('count')} layers x {info.get('width')}"
    else:
        text = str(info.get("model") or info.get("method") or "student")
    if refine:
        sizes = [f"{refine[k][1]} {what}" for k, what in (("num_attention_heads", "heads"),
                                                          ("intermediate_size", "feed-forward")) if k in refine]
        text += f", refined to {', '.join(sizes)}"
    return text


def frontier(points: list[dict], teacher: dict | None) -> list[dict]:
    """The ONNX variants of every point (and the teacher's ONNX graph) that no other is at most as large and
    at least as accurate as: the retention-against-size Pareto frontier, smallest first."""
    items = [(p["name"], v) for p in points if "variants" in p for v in p["variants"] if v["retention"] is not None]
    if teacher and teacher.get("onnx_size_bytes"):
        items.append(("teacher", {"name": "teacher-onnx", "size_bytes": teacher["onnx_size_bytes"], "retention": 1.0}))
    front = plots.pareto_front([(v["size_bytes"], v["retention"]) for _, v in items])
    return [{"point": items[i][0], "variant": items[i][1]["name"], "size_bytes": items[i][1]["size_bytes"],
             "retention": items[i][1]["retention"]} for i in front]


# ----------------------------------------------------------------------------- temperature curves


def curves(points: list[dict]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Points with the same settings but the temperature, as curves ({label: points sorted by T}); points on
    hard labels only (alpha 1: the temperature does nothing) are references, one value each."""
    lines: dict[str, list[dict]] = {}
    references = []
    for p in points:
        if "accuracy" not in p:
            continue
        if p["alpha"] >= 1:
            references.append(p)
        else:
            lines.setdefault(curve_label(p), []).append(p)
    return {k: sorted(v, key=lambda p: p["temperature"]) for k, v in lines.items()}, references


def curve_label(p: dict) -> str:
    """The entry's name (or its alpha), the student, and any other grid value but the temperature."""
    mix = p.get("entry") or f"alpha {p['alpha']:g}"
    others = [label(k, v) for k, v in p["grid"].items() if k != TEMPERATURE and not k.startswith("student.")]
    return ", ".join([mix, p["student"], *others])


def _colours(points: list[dict]) -> dict[str, str]:
    students = list(dict.fromkeys(p["student"] for p in points if "student" in p))
    return {s: STUDENT_SIZE_COLOURS[i % len(STUDENT_SIZE_COLOURS)] for i, s in enumerate(students)}


# ----------------------------------------------------------------------------- markdown


def markdown(s: dict) -> list[str]:
    done = [p for p in s["points"] if "accuracy" in p]
    t = s["teacher"]
    lines = [f"# compress sweep: {s['name']}", ""]
    intro = (f"{len(done)} of {len(s['points'])} points finished (`{s['pipeline']}`, this command "
             f"{s['wall_seconds'] / 60:.1f} minutes).")
    if t:
        intro += (f" Teacher: accuracy {t['accuracy']:.4f} on {s['eval']['sentences']} sentences of the "
                  f"`{s['eval']['split']}` split, {t['parameters'] / 1e6:.1f}M parameters.")
    intro += (" Accuracy and retention (against the teacher) are the distilled student's in PyTorch fp32; size and "
              "p50 latency are its deployed variant's (ONNX int8 when quantized, else ONNX fp32).")
    lines += [intro, "",
              "| point | T | alpha | student | parameters | accuracy | retention | variant | size (MB) | "
              "variant accuracy | p50 (ms) | status |",
              "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for p in s["points"]:
        if "accuracy" in p:
            lines.append(f"| {p['name']} | {p['temperature']:g} | {p['alpha']:g} | {p['student']} | "
                         f"{p['parameters'] / 1e6:.1f}M | {p['accuracy']:.4f} | {_pct(p['retention'])} | {p['variant']} | "
                         f"{p['size_bytes'] / 1e6:.1f} | {p['variant_accuracy']:.4f} | {p['p50_ms']:.2f} | {p['status']} |")
        else:
            lines.append(f"| {p['name']} | - | - | - | - | - | - | - | - | - | - | {p['status']} |")
    lines += temperature_table(s["points"])
    if s["frontier"]:
        lines += ["", "Retention-against-size frontier (ONNX variants; none of them is beaten by one at most as large "
                  "and at least as accurate): " + ", ".join(
                      f"{f['point']} {f['variant']} ({f['size_bytes'] / 1e6:.1f} MB, {f['retention']:.1%})"
                      for f in s["frontier"]) + "."]
    for p in s["points"]:
        if p["status"] in ("skipped", "failed"):
            lines += ["", f"{p['status'].capitalize()}: {p['name']}: {p['reason']}."]
    lines += ["", "Rerun one point alone: `compress run " + s["pipeline"] + " sweep=null name=NAME` followed by its "
              "overrides (sweep.json lists them)."]
    return lines


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def temperature_table(points: list[dict]) -> list[str]:
    """Accuracy of the fp32 student by temperature, a row per curve; hard-label points in their own column."""
    lines_, references = curves(points)
    temps = sorted({p["temperature"] for line in lines_.values() for p in line})
    if len(temps) < 2:
        return []
    head = ["student, loss", *(f"T={t:g}" for t in temps), "hard labels only"]
    rows = []
    for name, line in lines_.items():
        by_t = {p["temperature"]: p["accuracy"] for p in line}
        rows.append([name, *(f"{by_t[t]:.4f}" if t in by_t else "-" for t in temps), "-"])
    for p in references:
        rows.append([curve_label(p), *("-" for _ in temps), f"{p['accuracy']:.4f}"])
    return ["", "## Accuracy by temperature", "", "| " + " | ".join(head) + " |",
            "|---|" + "---:|" * (len(head) - 1)] + ["| " + " | ".join(r) + " |" for r in rows]


# ----------------------------------------------------------------------------- html and plots


def render(s: dict) -> str:
    done = [p for p in s["points"] if "accuracy" in p]
    figures_ = []
    if done and s["teacher"]:
        figures_.append(_figure(frontier_svg(s), "Every point's ONNX variants (circles fp32, diamonds int8; a colour per "
                                "student). Step line: the Pareto frontier, its points named. Star: the teacher's ONNX graph."))
        lines_, _ = curves(done)
        if any(len(line) > 1 for line in lines_.values()):
            widths = [(p["accuracy_ci95"][1] - p["accuracy_ci95"][0]) / 2 for p in done if p.get("accuracy_ci95")]
            ci = f" A point's 95% interval is about ±{sorted(widths)[len(widths) // 2] * 100:.1f} points." if widths else ""
            figures_.append(_figure(temperature_svg(s), "The distilled student's accuracy (PyTorch fp32) against the "
                                    "temperature, a line per student (colour) and loss mix (line style); dotted: the same "
                                    "student on hard labels only; dashed: the teacher." + ci))
    plots_html = '<div class="plots">' + "".join(figures_) + "</div>" if figures_ else ""
    lines = markdown(s)
    body = [f"<header><h1>compress sweep: {_e(s['name'])}</h1>",
            f'<p class="sub">Created {_e(s["created"])}; {len(done)} of {len(s["points"])} points finished.</p></header>',
            plots_html, markdown_html(lines[2:])]
    return page(f"compress sweep: {s['name']}", body)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _e(text) -> str:
    import html

    return html.escape(str(text), quote=True)


def frontier_svg(s: dict) -> str:
    """Retention against size on disk (log scale) of every point's ONNX variants, with the Pareto frontier."""
    colours = _colours(s["points"])
    teacher = s["teacher"]
    on_front = {(f["point"], f["variant"]) for f in s["frontier"]}
    title = "Retention against size, every point"

    def draw(fig):
        from matplotlib.lines import Line2D

        fig.subplots_adjust(left=0.15)
        ax = fig.add_subplot()
        named = []
        for p in s["points"]:
            for v in p.get("variants", []):
                if v["retention"] is None:  # a teacher at accuracy 0: nothing to keep
                    continue
                x, y = v["size_bytes"] / 1e6, v["retention"]
                ax.scatter([x], [y], marker="D" if v["precision"] == "int8" else "o", color=colours[p["student"]],
                           s=26, alpha=0.8, zorder=3)
                point = plots.Point(f"{p['name']} {v['precision']}", x, y, None, "student", colours[p["student"]])
                if (p["name"], v["name"]) in on_front:
                    named.append(point)
        if teacher.get("onnx_size_bytes"):
            t = plots.Point("teacher", teacher["onnx_size_bytes"] / 1e6, 1.0, None, "teacher", "#333333")
            ax.scatter([t.x], [1.0], marker="*", color="#333333", s=110, zorder=3)
            if ("teacher", "teacher-onnx") in on_front:
                named.append(t)
        front = sorted(named, key=lambda p: p.x)
        if len(front) > 1:
            ax.step([p.x for p in front], [p.accuracy for p in front], where="post", color="#555555", alpha=0.6,
                    linewidth=1.4, zorder=2)
        ax.set_xscale("log")
        ax.margins(x=0.15, y=0.1)
        plots.log_x_percent_y(ax, "size on disk (MB, log scale)", "retention (accuracy / teacher's)")
        ax.set_title(title, fontsize=10)
        plots._place_labels(ax, [(p, p.accuracy) for p in named], [], set())
        handles = [Line2D([], [], marker="o", linestyle="", color=c, label=st) for st, c in colours.items()]
        handles += [Line2D([], [], marker="D", linestyle="", color="#555555", label="ONNX int8"),
                    Line2D([], [], marker="o", linestyle="", color="#555555", label="ONNX fp32"),
                    Line2D([], [], marker="*", linestyle="", color="#333333", markersize=9, label="teacher ONNX"),
                    Line2D([], [], color="#555555", alpha=0.6, drawstyle="steps-post", label="Pareto frontier")]
        fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7.5, frameon=False, bbox_to_anchor=(0.5, 0.0))

    return plots.svg(draw, title, "compress-sweep-frontier")


def temperature_svg(s: dict) -> str:
    """Accuracy of the fp32 student against the temperature (log 2 scale): one line per curve, hard-label
    references and the teacher as horizontal lines."""
    done = [p for p in s["points"] if "accuracy" in p]
    lines_, references = curves(done)
    colours = _colours(s["points"])
    alphas = sorted({p["alpha"] for line in lines_.values() for p in line}, reverse=True)
    title = "Accuracy against temperature"

    def draw(fig):
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, PercentFormatter

        fig.subplots_adjust(bottom=0.34)  # room for a legend line per curve
        ax = fig.add_subplot()
        temps = sorted({p["temperature"] for line in lines_.values() for p in line})
        for name, line in lines_.items():
            style = ALPHA_STYLES[alphas.index(line[0]["alpha"]) % len(ALPHA_STYLES)]
            ax.plot([p["temperature"] for p in line], [p["accuracy"] for p in line], marker="o", markersize=4,
                    linestyle=style, color=colours[line[0]["student"]], linewidth=1.4, label=name, zorder=3)
        for p in references:
            ax.axhline(p["accuracy"], color=colours[p["student"]], linestyle=":", linewidth=1.3,
                       label=f"{curve_label(p)} (no T)", zorder=2)
        if s["teacher"]:
            ax.axhline(s["teacher"]["accuracy"], color="#333333", linestyle="--", linewidth=0.9,
                       label=f"teacher {s['teacher']['accuracy']:.1%}", zorder=1)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(temps))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
        ax.margins(x=0.08, y=0.12)
        ax.set_xlabel("temperature T (log scale)")
        ax.set_ylabel("accuracy, PyTorch fp32 student")
        ax.grid(True, which="major", color="#e6e6e6", linewidth=0.7)
        ax.set_axisbelow(True)
        ax.set_title(title, fontsize=10)
        fig.legend(loc="lower center", ncol=2, fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0), handlelength=3.5)

    return plots.svg(draw, title, "compress-sweep-temperature", size=(5.6, 5.4))
