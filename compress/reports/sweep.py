"""The summary of a sweep (compress/sweep.py), from its points' report.json files: ``sweep.json`` (the source
of truth), ``sweep.md`` (the table, the quality metric by temperature) and ``sweep.html`` (self-contained: the
same lines, with the retention-against-size frontier across points and the temperature curve as inline SVG).

What a point's figures are is its task's: the ``sweep_figures`` hook (compress/tasks/<task>/sweep.py) turns a
report into ``{"metric", "teacher", "point"}``. ``point`` holds ``temperature``, ``alpha``, ``student``,
``retention`` (against the teacher, higher is better), ``variants`` (the student's ONNX variants, each with
``name``, ``precision``, ``size_bytes`` and ``retention``: the frontier) and the task's own figures; ``metric``
says which of them the temperature curve draws (``key``), how the axes, the table's columns and the
by-temperature tables name them; ``teacher`` holds the teacher's figures (``metric.key`` among them, and
``onnx_size_bytes`` for the frontier's star) and a sentence about it (``text``). A classifier's is accuracy; a
causal LM's is perplexity retention (WikiText-2 when it is scored).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from compress.config.sweep import label
from compress.io import write_json, write_text
from compress.layout import SWEEP_HTML, SWEEP_JSON, SWEEP_MD, RunLayout
from compress.records import read_report
from compress.reports import plots
from compress.reports.html import markdown_html, page

TEMPERATURE = "distill.temperature"
FINISHED = ("done", "kept")
STUDENT_SIZE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
ALPHA_STYLES = ("-", "--", "-.", (0, (1, 1)))


def write(sweep_dir: Path, cfg, pipeline: Path, overrides: list[str], records: list[dict], seconds: float,
          figures) -> dict:
    """``figures(report) -> {"point", "teacher", "metric"}``: the task's ``sweep_figures`` hook (compress/sweep.py
    looks it up in the task registry, a layer above this module)."""
    summary = build(cfg, pipeline, overrides, records, seconds, figures)
    write_json(sweep_dir / SWEEP_JSON, summary)
    write_text(sweep_dir / SWEEP_MD, "\n".join(markdown(summary)) + "\n")
    write_text(sweep_dir / SWEEP_HTML, render(summary))
    return summary


def build(cfg, pipeline: Path, overrides: list[str], records: list[dict], seconds: float, figures) -> dict:
    points, teacher, evaluation, metric = [], None, None, None
    for r in records:
        report_path = RunLayout(Path(r["run_dir"])).report_json
        if r["status"] in FINISHED and report_path.is_file():
            report = read_report(report_path)
            got = figures(report)
            teacher, metric = teacher or got["teacher"], metric or got["metric"]
            evaluation = evaluation or report.get("eval")
            r = {**r, **got["point"]}
        points.append(r)
    return {
        "name": cfg.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pipeline": str(pipeline),
        "command_overrides": overrides,
        "budget_minutes": cfg.sweep.budget_minutes,
        "wall_seconds": seconds,
        "task": cfg.task,
        "metric": metric,
        "eval": evaluation,
        "teacher": teacher,
        "points": points,
        "frontier": frontier(points, teacher),
    }


def finished(p: dict) -> bool:
    """Whether the point has figures (it finished and its report was read)."""
    return "variants" in p


def describe_student(info: dict, refine: dict | None = None) -> str:
    """layers 0, 2, 4 of the teacher -> "3 layers (0, 2, 4)"; a config student -> "4 layers x 256"; refined by
    the refine stage -> "3 layers (0, 2, 4), refined to 6 heads, 768 feed-forward"."""
    if info.get("method") == "layers" and info.get("layers") is not None:
        text = f"{len(info['layers'])} layers ({_ranges(info['layers'])})"
        if (info.get("ffn") or {}).get("intermediate_size"):  # a causal LM's feed-forward pruned with the layers
            text += f", {info['ffn']['intermediate_size']} feed-forward"
    elif info.get("method") == "config":
        text = f"{info.get('count')} layers x {info.get('width')}"
    else:
        text = str(info.get("model") or info.get("method") or "student")
    if refine:
        sizes = [f"{refine[k][1]} {what}" for k, what in (("num_attention_heads", "heads"),
                                                          ("intermediate_size", "feed-forward")) if k in refine]
        text += f", refined to {', '.join(sizes)}"
    return text


def _ranges(layers: list[int]) -> str:
    """[0, 2, 4] -> "0, 2, 4"; [0, 1, 2, 3, 5] -> "0-3, 5": runs of three or more as a range."""
    parts, run = [], []
    for i in [*layers, None]:
        if run and i is not None and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts += [f"{run[0]}-{run[-1]}"] if len(run) > 2 else [str(r) for r in run]
        run = [i] if i is not None else []
    return ", ".join(parts)


def frontier(points: list[dict], teacher: dict | None) -> list[dict]:
    """The ONNX variants of every point (and the teacher's ONNX graph) that no other is at most as large and
    at least as accurate as: the retention-against-size Pareto frontier, smallest first."""
    items = [(p["name"], v) for p in points if finished(p) for v in p["variants"] if v["retention"] is not None]
    if teacher and teacher.get("onnx_size_bytes"):
        items.append(("teacher", {"name": "teacher-onnx", "size_bytes": teacher["onnx_size_bytes"], "retention": 1.0}))
    front = plots.pareto_front([(v["size_bytes"], v["retention"]) for _, v in items])
    return [{"point": items[i][0], "variant": items[i][1]["name"], "size_bytes": items[i][1]["size_bytes"],
             "retention": items[i][1]["retention"]} for i in front]


# ----------------------------------------------------------------------------- temperature curves


def curves(points: list[dict], key: str | None = None) -> tuple[dict[str, list[dict]], list[dict]]:
    """Points with the same settings but the temperature, as curves ({label: points sorted by T}); points on
    hard labels only (alpha 1: the temperature does nothing) are references, one value each. Only finished
    points, and with ``key`` only those that have that figure."""
    lines: dict[str, list[dict]] = {}
    references = []
    for p in points:
        if not finished(p) or (key is not None and p.get(key) is None):
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


def fmt(value, how: str) -> str:
    """A figure as the table writes it: ``how`` is str, g, params (M), mb, pct, or f<digits>."""
    if value is None:
        return "-"
    if how == "str":
        return str(value)
    if how == "g":
        return f"{value:g}"
    if how == "params":
        return f"{value / 1e6:.1f}M"
    if how == "mb":
        return f"{value / 1e6:.1f}"
    if how == "pct":
        return f"{value:.1%}"
    return f"{value:.{int(how[1:])}f}"


def markdown(s: dict) -> list[str]:
    done = [p for p in s["points"] if finished(p)]
    t, m = s["teacher"], s.get("metric")
    lines = [f"# compress sweep: {s['name']}", ""]
    intro = (f"{len(done)} of {len(s['points'])} points finished (`{s['pipeline']}`, this command "
             f"{s['wall_seconds'] / 60:.1f} minutes).")
    if t:
        intro += " " + t["text"]
    if m:
        intro += " " + m["note"]
    columns = [["T", "temperature", "g"], ["alpha", "alpha", "g"], ["student", "student", "str"], *(m["columns"] if m else [])]
    lines += [intro, "", "| point | " + " | ".join(c[0] for c in columns) + " | status |",
              "|---|" + "".join("---|" if c[2] == "str" else "---:|" for c in columns) + "---|"]
    for p in s["points"]:
        cells = [fmt(p.get(key), how) for _, key, how in columns] if finished(p) else ["-"] * len(columns)
        lines.append(f"| {p['name']} | " + " | ".join(cells) + f" | {p['status']} |")
    for key, title, how in (m["tables"] if m else []):
        lines += temperature_table(s["points"], key, title, how)
    if s["frontier"]:
        lines += ["", "Retention-against-size frontier (ONNX variants; none of them is beaten by one at most as large "
                  "and at least as good): " + ", ".join(
                      f"{f['point']} {f['variant']} ({f['size_bytes'] / 1e6:.1f} MB, {f['retention']:.1%})"
                      for f in s["frontier"]) + "."]
    for p in s["points"]:
        if p["status"] in ("skipped", "failed"):
            lines += ["", f"{p['status'].capitalize()}: {p['name']}: {p['reason']}."]
    lines += ["", "Rerun one point alone: `compress run " + s["pipeline"] + " sweep=null name=NAME` followed by its "
              "overrides (sweep.json lists them)."]
    return lines


def temperature_table(points: list[dict], key: str, title: str, how: str) -> list[str]:
    """``key`` of the fp32 student by temperature, a row per curve; hard-label points in their own column."""
    lines_, references = curves(points, key)
    temps = sorted({p["temperature"] for line in lines_.values() for p in line})
    if len(temps) < 2:
        return []
    head = ["student, loss", *(f"T={t:g}" for t in temps), "hard labels only"]
    rows = []
    for name, line in lines_.items():
        by_t = {p["temperature"]: p[key] for p in line}
        rows.append([name, *(fmt(by_t[t], how) if t in by_t else "-" for t in temps), "-"])
    for p in references:
        rows.append([curve_label(p), *("-" for _ in temps), fmt(p[key], how)])
    return ["", f"## {title} by temperature", "", "| " + " | ".join(head) + " |",
            "|---|" + "---:|" * (len(head) - 1)] + ["| " + " | ".join(r) + " |" for r in rows]


# ----------------------------------------------------------------------------- html and plots


def render(s: dict) -> str:
    done = [p for p in s["points"] if finished(p)]
    m = s.get("metric")
    figures_ = []
    if done and s["teacher"] and m:
        svg, key = frontier_svg(s)
        figures_.append(_figure(svg, "Every point's ONNX variants (circles fp32, diamonds int8 or int4; a "
                                "colour per student) by " + m["retention_axis"] + ". Step line: the Pareto frontier, "
                                "its points named. Star: the teacher's ONNX graph."
                                + (" Numbered: " + "; ".join(key) + "." if key else "")))
        lines_, _ = curves(done, m["key"])
        if any(len(line) > 1 for line in lines_.values()):
            ci = m.get("ci95")
            widths = [(p[ci][1] - p[ci][0]) / 2 for p in done if ci and p.get(ci)]
            ci = f" A point's 95% interval is about ±{sorted(widths)[len(widths) // 2] * 100:.1f} points." if widths else ""
            figures_.append(_figure(temperature_svg(s), f"The distilled student's {m['name']} (PyTorch fp32) against the "
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


def frontier_svg(s: dict) -> tuple[str, list[str]]:
    """Retention against size on disk (log scale) of every point's ONNX variants, with the Pareto frontier; and
    the key of its numbered points (names with no free place on the plot)."""
    key: list[str] = []
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
                if v["retention"] is None:  # a teacher at accuracy 0, a variant not scored: nothing to place
                    continue
                x, y = v["size_bytes"] / 1e6, v["retention"]
                ax.scatter([x], [y], marker="o" if v["precision"] == "fp32" else "D", color=colours[p["student"]],
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
        plots.log_x_percent_y(ax, "size on disk (MB, log scale)", s["metric"]["retention_axis"])
        ax.set_title(title, fontsize=10)
        key.extend(plots._place_labels(ax, [(p, p.accuracy) for p in named], [], set()))
        handles = [Line2D([], [], marker="o", linestyle="", color=c, label=st) for st, c in colours.items()]
        handles += [Line2D([], [], marker="D", linestyle="", color="#555555", label="ONNX int8 / int4"),
                    Line2D([], [], marker="o", linestyle="", color="#555555", label="ONNX fp32"),
                    Line2D([], [], marker="*", linestyle="", color="#333333", markersize=9, label="teacher ONNX"),
                    Line2D([], [], color="#555555", alpha=0.6, drawstyle="steps-post", label="Pareto frontier")]
        fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7.5, frameon=False, bbox_to_anchor=(0.5, 0.0))

    return plots.svg(draw, title, "compress-sweep-frontier"), key


def temperature_svg(s: dict) -> str:
    """The metric's figure of the fp32 student against the temperature (log 2 scale): one line per curve,
    hard-label references and the teacher as horizontal lines."""
    m = s["metric"]
    key = m["key"]
    lines_, references = curves(s["points"], key)
    colours = _colours(s["points"])
    alphas = sorted({p["alpha"] for line in lines_.values() for p in line}, reverse=True)
    title = f"{m['name'][0].upper()}{m['name'][1:]} against temperature"
    percent = m["format"] in ("pct", "f4")  # accuracies and retentions are fractions

    def draw(fig):
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, PercentFormatter

        fig.subplots_adjust(left=0.16, bottom=0.34)  # room for the axis label and a legend line per curve
        ax = fig.add_subplot()
        temps = sorted({p["temperature"] for line in lines_.values() for p in line})
        for name, line in lines_.items():
            style = ALPHA_STYLES[alphas.index(line[0]["alpha"]) % len(ALPHA_STYLES)]
            ax.plot([p["temperature"] for p in line], [p[key] for p in line], marker="o", markersize=4,
                    linestyle=style, color=colours[line[0]["student"]], linewidth=1.4, label=name, zorder=3)
        for p in references:
            ax.axhline(p[key], color=colours[p["student"]], linestyle=":", linewidth=1.3,
                       label=f"{curve_label(p)} (no T)", zorder=2)
        if s["teacher"] and s["teacher"].get(key) is not None:
            value = s["teacher"][key]
            ax.axhline(value, color="#333333", linestyle="--", linewidth=0.9,
                       label=f"teacher {value:.1%}" if percent else f"teacher {value:g}", zorder=1)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(temps))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
        ax.margins(x=0.08, y=0.12)
        ax.set_xlabel("temperature T (log scale)")
        ax.set_ylabel(m["axis"])
        ax.grid(True, which="major", color="#e6e6e6", linewidth=0.7)
        ax.set_axisbelow(True)
        ax.set_title(title, fontsize=10)
        long = max((len(t.get_label()) for t in ax.get_lines()), default=0) > 45  # a causal LM's students are long
        fig.legend(loc="lower center", ncol=1 if long else 2, fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0),
                   handlelength=3.5)

    return plots.svg(draw, title, "compress-sweep-temperature", size=(5.6, 5.4))
