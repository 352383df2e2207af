"""report.html of one run and compare.html of several, rendered from report.json alone.

Self-contained: the CSS is inline, the plots are inline SVG (compress.plots), there are no scripts, fonts or
links to fetch, so the file opens the same offline, from CI artifacts or attached to a mail. Every piece of
text from report.json goes through html.escape. The sections after the variants table are report.md's own
lines (compress.reports.accuracy), turned into HTML by a converter for the few markdown forms they use, so the
two reports never say different things.
"""

from __future__ import annotations

import html
import re

from compress.records import Report
from compress.reports import accuracy as stage
from compress.reports import plots

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #222; margin: 24px auto; max-width: 1180px; padding: 0 16px; line-height: 1.45; font-size: 14px; }
h1 { font-size: 24px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin: 0 0 12px; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
dl.facts dt { color: #555; font-weight: 600; }
dl.facts dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
.callout { background: #eef7ee; border-left: 5px solid #2ca02c; padding: 10px 14px; margin: 16px 0; font-size: 15px; }
.callout p { margin: 4px 0; }
.callout.none { background: #fdf0ef; border-left-color: #d62728; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
.plots figure { flex: 1 1 540px; min-width: 0; margin: 0; border: 1px solid #e4e4e4; border-radius: 4px; padding: 6px; }
.plots svg { width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 12px; padding: 4px 6px 0; }
.scroll { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 12.5px; }
th, td { padding: 3px 6px; border-bottom: 1px solid #e6e6e6; text-align: left; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
tr.recommended td { background: #fff5d6; }
.name { white-space: nowrap; }
.flag { display: block; white-space: normal; font-size: 85%; color: #a33; }
.range { display: block; font-size: 85%; color: #555; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.tag { display: block; font-size: 11px; color: #8a6d00; }
.tag.shipped { color: #111; font-weight: 600; }
code { background: #f4f4f4; padding: 0 3px; border-radius: 3px; font-size: 12px; word-break: break-all; }
ul { margin: 6px 0; padding-left: 22px; }
p { margin: 8px 0; overflow-wrap: anywhere; }
"""
_CODE = re.compile(r"`([^`]+)`")


def render_run(report: Report) -> str:
    """report.html of one run."""
    rec = report.get("recommended")
    sentences = [x for x in (stage.shipped_sentence(report), stage.recommendation_sentence(report)) if x]
    callout = (f'<div class="callout{"" if rec and rec.get("size") else " none"}">'
               + "".join(f"<p>{_inline(x)}</p>" for x in sentences) + "</div>" if sentences else "")
    body = [
        f"<header><h1>compress report: {_e(report.name)}</h1>",
        f'<p class="sub">{_e(_provenance(report))}</p>',
        _facts(report), "</header>",
        callout,
        _plots([("size", [plots.series(report, "size")], f"Accuracy against size on disk\n{report.name}: every variant")]
               + [("latency", [plots.series(report, "latency", case=key)],
                   f"Accuracy against p50 latency\n{report.name} on {where}") for key, where in _latency_cases(report)]),
        "<h2>Variants</h2>",
        _variants_table([(None, report)], recommended=_recommended_names(rec)),
        markdown_html(stage.details_markdown(report)),
    ]
    return page(f"compress report: {report.name}", body)


def render_comparison(runs: list[tuple[str, Report]]) -> str:
    """compare.html: several runs' variants on the same plots, a colour per run, and one table."""
    colours = {label: plots.RUN_COLOURS[i % len(plots.RUN_COLOURS)] for i, (label, _) in enumerate(runs)}
    size = [plots.series(r, "size", colours[label], label) for label, r in runs]
    cases: dict[str, list[plots.Series]] = {}  # a latency plot per target case, with the runs measured there
    for label, r in runs:
        for key, title in _latency_cases(r):
            cases.setdefault(title, []).append(plots.series(r, "latency", colours[label], label, case=key))
    rows = []
    for label, r in runs:
        rec, evaluation = r.get("recommended") or {}, r.get("eval")
        rows.append([f'<span class="name">{_swatch(colours[label])}{_e(label)}</span>', _e(r.created.replace("T", " ")),
                     _e(f"{evaluation['sentences']} sentences of {evaluation['split']}"), _e(_target(r)),
                     *(f'<span class="name">{_e(name or "-")}</span>' for name in (
                         plots.shipped_name(r), (rec.get("size") or {}).get("name"), (rec.get("latency") or {}).get("name"))),
                     _e(f"{rec['retention_floor']:.0%}" if rec.get("retention_floor") else "-")])
    runs_table = _table(["run", "created", "evaluation", "target", "shipped", "recommended (size)",
                         "recommended (latency)", "retention floor"], [False] * 8, rows)
    names = " vs ".join(label for label, _ in runs)
    body = [
        f"<header><h1>compress comparison: {_e(names)}</h1>",
        '<p class="sub">Each run\'s figures are relative to its own teacher; latencies compare only between runs '
        "measured on the same target.</p></header>",
        runs_table,
        _plots([("size", size, "Accuracy against size on disk\nevery variant of each run")]
               + [("latency", series, f"Accuracy against p50 latency\n{where}") for where, series in cases.items()]),
        "<h2>Variants</h2>",
        _variants_table([(label, r) for label, r in runs], colours=colours,
                        recommended={(label, n) for label, r in runs for n in _recommended_names(r.get("recommended"))}),
    ]
    return page(f"compress comparison: {names}", body)


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(part for part in body if part) + "\n</body></html>\n")


def _provenance(report: Report) -> str:
    versions = report.environment.get("versions", {})
    made = ", ".join(f"{k} {versions[k]}" for k in ("compress", "torch", "onnxruntime") if versions.get(k))
    return f"Created {report.created}, config {report.config_hash}" + (f"; {made}" if made else "")


def _target(report: Report) -> str:
    t, env = report.get("target"), report.environment
    threads = f"{t['threads']} threads" if t.get("threads") else "all cores"
    cpu = env.get("cpu", t.get("name", "cpu"))
    cores = f", {env['cores']} cores" if env.get("cores") else ""
    return f"{cpu}{cores}; {threads}, batch {t['batch_size']}, sequence length {t['sequence_length']}"


def _target_fact(t: dict) -> str:
    if t["status"] == "skipped":
        return f"{t['name']} skipped ({t['reason']})"
    c = t["cases"][0]
    threads = f"{c['threads']} thread{'s' if c['threads'] != 1 else ''}" if c["threads"] else "all cores"
    lengths = ", ".join(str(x["sequence_length"]) for x in t["cases"])
    return f"{t['name']} ({threads}, batch {c['batch_size']}, sequence length {lengths})"


def _facts(report: Report) -> str:
    env, evaluation, distill = report.environment, report.get("eval"), report.get("distill")
    items = [("Evaluation", f"{evaluation['sentences']} sentences of the {evaluation['split']} split "
                            f"(95% bootstrap intervals)"),
             ("Target", _target(report) + (f"; int8 ISA {env['int8_isa']}" if env.get("int8_isa") else "")),
             ("Reference", f"{report.reference} (PyTorch fp32): retention and speedup are against it")]
    if report.get("targets"):
        items.insert(2, ("Targets", "; ".join(_target_fact(t) for t in report.get("targets"))))
    if distill:
        items.append(("Distillation", f"temperature {distill['temperature']}, alpha {distill['alpha']}"))
    return '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"


def _latency_cases(report: Report) -> list[tuple[str | None, str]]:
    """(case key, what the plot's title says of it) of each latency plot: one per measured target case; a
    report.json from before targets has one, of its variants' own latencies (key None)."""
    cases = [c for t in report.get("targets", []) for c in t["cases"]
             if any(c["key"] in v.measurements for v in report.variants)]
    if not cases:
        t = report.get("target")
        return [(None, f"{t['name']}, batch {t['batch_size']}, sequence length {t['sequence_length']}")]
    return [(c["key"], f"{c['target']}, batch {c['batch_size']}, sequence length {c['sequence_length']}") for c in cases]


def _plots(figures: list[tuple[str, list[plots.Series], str]]) -> str:
    """The plots, each (axis, its series, title), side by side where the page is wide enough; a caption under
    each, with the key of its numbered points."""
    caption = ("Error bars: 95% bootstrap interval of the accuracy. Step line: the Pareto frontier (no variant "
               "there is beaten by one at most as {0} and at least as accurate). Dashed: the teacher's accuracy.")
    out = []
    for axis, series, title in figures:
        svg, key = plots.tradeoff_svg(series, axis, title)
        text = caption.format("large" if axis == "size" else "slow")
        if key:
            text += " Numbered: " + "; ".join(key) + "."
        out.append(f"<figure>{svg}<figcaption>{_e(text)}</figcaption></figure>")
    return '<div class="plots">' + "".join(out) + "</div>"


def _recommended_names(rec: dict | None) -> set[str]:
    rec = rec or {}
    return {v["name"] for v in (rec.get("size"), rec.get("latency")) if v}


def _variants_table(runs: list[tuple[str | None, Report]], recommended, colours: dict | None = None) -> str:
    """report.md's variants table; recommended rows highlighted; with several runs, a run column first."""
    header = list(stage.TABLE_COLUMNS)
    right = list(stage.TABLE_RIGHT)
    rows, marks = [], []
    for label, r in runs:
        for v, cells in zip(r.variants, stage.table_rows(r.variants)):
            cells = [_e(c) for c in cells]
            key = v.name if label is None else (label, v.name)
            cells[0] = f'<span class="name">{cells[0]}</span>'
            if key in recommended:
                cells[0] += '<span class="tag">recommended</span>'
            if v.name == plots.shipped_name(r):
                cells[0] += '<span class="tag shipped">shipped</span>'
            if label is not None:
                cells.insert(0, f'<span class="name">{_swatch(colours[label])}{_e(label)}</span>')
            rows.append(cells)
            marks.append(key in recommended)
    if runs and runs[0][0] is not None:
        header.insert(0, "run")
        right.insert(0, False)
    return _table(header, right, rows, marks)


def _table(header: list[str], right: list[bool], rows: list[list[str]], marks: list[bool] | None = None) -> str:
    """An HTML table; ``header`` is plain text (escaped here), ``rows`` already HTML."""
    def cls(i):
        return ' class="num"' if i < len(right) and right[i] else ""
    head = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(header))
    body = []
    for n, row in enumerate(rows):
        tr = '<tr class="recommended">' if marks and marks[n] else "<tr>"
        body.append(tr + "".join(f"<td{cls(i)}>{_flag_span(c)}</td>" for i, c in enumerate(row)) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


_FLAG = re.compile(r" \[([a-z][a-z ,]*)\]")
_RANGE = re.compile(r"x \((\d[\d.]*-\d[\d.]*)\)")  # a speedup's interval over rounds: 2.31x (2.10-2.52)


def _flag_span(cell: str) -> str:
    """A figure's flags (``0.05 [below timer resolution]``, compress.bench.rounds.tag) and a speedup's interval on
    lines of their own in its cell, the flags free to wrap: they do not widen a column past the page."""
    cell = _RANGE.sub(lambda m: f'x<span class="range">({m.group(1)})</span>', cell)
    return _FLAG.sub(lambda m: f'<span class="flag">[{m.group(1)}]</span>', cell)


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{_e(colour)}"></span>'


def markdown_html(lines: list[str]) -> str:
    """HTML of report.md's lines: blocks separated by blank lines, each a heading (#), a table (| ... |, its
    second line the alignment row), a list (- ...) or a paragraph; `code` inside. Nothing else is needed."""
    blocks, block = [], []
    for line in lines + [""]:
        if line.strip():
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    out = []
    for block in blocks:
        first = block[0]
        if first.startswith("#"):
            level = min(max(len(first) - len(first.lstrip("#")), 2), 4)  # the page's h1 is its own header
            out.append(f"<h{level}>{_inline(first.lstrip('#').strip())}</h{level}>")
            if len(block) > 1:
                out.append(f"<p>{_inline(' '.join(block[1:]))}</p>")
        elif all(line.startswith("|") for line in block) and len(block) >= 2:
            cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block]
            right = [c.endswith(":") for c in cells[1]]
            rows = [[f'<span class="name">{_inline(row[0])}</span>'] + [_inline(c) for c in row[1:]] for row in cells[2:]]
            out.append(_table([_strip_code(c) for c in cells[0]], right, rows))
        elif all(line.startswith("- ") for line in block):
            out.append("<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in block) + "</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(block))}</p>")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    parts = _CODE.split(text)  # odd items are the insides of backticks
    return "".join(f"<code>{_e(p)}</code>" if i % 2 else _e(p) for i, p in enumerate(parts))


def _strip_code(text: str) -> str:
    return text.replace("`", "")


def _e(value) -> str:
    return html.escape(str(value), quote=True)
