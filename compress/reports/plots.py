"""The trade-off plots of report.html and compare.html, as SVG text to inline: accuracy against size
on disk and against p50 latency (one latency plot per target case), on a log x axis. Every variant is a point
with its 95% accuracy interval and its name, placed where it covers nothing else (compress/reports/labels.py;
a name with no free place becomes a number the caption explains); the teacher's accuracy is a dashed reference
line; the Pareto frontier is a step line; the recommended variant is ringed and the shipped one (ship.variant)
boxed. matplotlib draws without pyplot (no global state, no display) and writes text as paths, so the SVG needs
no font and nothing from the network.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass, field

from compress.records import Report, Variant
from compress.reports import labels

AXES = {  # axis -> (x label, x value of a report.json variant)
    "size": ("size on disk (MB, log scale)", lambda v: v.size_bytes / 1e6),
    "latency": ("p50 latency per query (ms, log scale)", lambda v: v.latency_ms.p50),
}
Y_LABEL = "accuracy (%; bars: 95% interval)"
KINDS = {  # kind -> (marker, colour in a single-run plot, legend text)
    "teacher": ("*", "#333333", "teacher"),
    "student": ("o", "#1f77b4", "student fp32"),
    "quantized": ("D", "#ff7f0e", "student quantized"),
    "baseline": ("s", "#8c8c8c", "baseline (not distilled)"),
}
RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
RING = "#d62728"
SHIPPED = "#111111"
LABEL_SIZE = 7.5  # points
FOCUS = 0.15  # the accuracy axis shows the variants within 15 points of the best; lower ones sit on its floor


@dataclass
class Point:
    label: str
    x: float
    accuracy: float
    ci95: tuple[float, float] | None
    kind: str
    colour: str
    shipped: bool = False  # the variant in the bundle (report.json's shipped.variant)


@dataclass
class Series:
    """One run on a plot: its variants, its teacher's accuracy and what it recommends."""

    name: str
    colour: str
    points: list[Point]
    teacher_accuracy: float | None = None
    floor_accuracy: float | None = None  # teacher accuracy x retention floor: drawn for a single run only
    floor: float | None = None
    recommended: str | None = None
    notes: list[str] = field(default_factory=list)


def kind(variant: Variant) -> str:
    """teacher | baseline | quantized | student: decides the marker."""
    if variant.role in ("teacher", "baseline"):
        return variant.role
    return "student" if variant.precision == "fp32" else "quantized"


def series(report: Report, axis: str, colour: str | None = None, name: str | None = None, case: str | None = None) -> Series:
    """A report.json's variants as points on ``axis``; colour None = coloured by kind (a single run). With
    ``case`` (a target case of report.json's ``targets``, e.g. ``mobile@16``) the latency axis is that case's
    p50, the points are the variants measured there and the ring marks the variant recommended there."""
    value = AXES[axis][1]
    variants = report.variants
    rec = report.get("recommended") or {}
    recommended = (rec.get(axis) or {}).get("name")
    if case is not None:
        variants = [v for v in variants if case in v.measurements]
        value = lambda v: v.measurements[case].latency_ms.p50  # noqa: E731
        found = next((c for t in report.get("targets", []) for c in t["cases"] if c["key"] == case), {})
        recommended = (found.get("recommended") or {}).get("name")
    shipped = shipped_name(report)
    points = [Point(v.name, value(v), v.accuracy, tuple(v.get("accuracy_ci95")) if v.get("accuracy_ci95") else None,
                    kind(v), colour or KINDS[kind(v)][1], v.name == shipped) for v in variants]
    ref = report.variant(report.reference)
    floor = rec.get("retention_floor")
    teacher = ref.accuracy if ref else None
    return Series(name or report.name, colour or "#333333", points, teacher,
                  teacher * floor if teacher is not None and floor else None, floor, recommended)


def shipped_name(report: Report) -> str | None:
    """The variant the run's bundle holds; None when nothing was shipped or the report predates the record."""
    shipped = report.get("shipped") or {}
    return shipped.get("variant") if shipped.get("enabled", True) else None


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, accuracy) points that no other point beats: one beats another when it costs at
    most as much and is at least as accurate, and is strictly better in one of the two. Sorted by cost, so
    accuracy rises along the frontier; equal points are both on it."""
    front = [i for i, (x, acc) in enumerate(points)
             if not any(ox <= x and oacc >= acc and (ox < x or oacc > acc) for ox, oacc in points)]
    return sorted(front, key=lambda i: points[i])


def tradeoff_svg(all_series: list[Series], axis: str, title: str) -> tuple[str, list[str]]:
    """The plot of ``axis`` ("size" or "latency") as an <svg> element (no XML prolog), and the lines of its key:
    what each numbered point names (points whose names found no free place) for the caption."""
    key: list[str] = []

    def draw(fig):
        fig.set_layout_engine("constrained")  # the axes sized around their tick labels, axis labels and legend
        ax = fig.add_subplot()
        placing = _draw(ax, all_series, axis)
        ax.set_title(title, fontsize=9)
        _legend(fig, all_series)
        fig.draw_without_rendering()
        fig.set_layout_engine("none")  # keep those positions: the labels are placed against them
        key.extend(placing())

    return svg(draw, title, f"compress-{axis}-{title}"), key


def svg(draw, title: str, salt: str, size: tuple[float, float] = (5.6, 4.4)) -> str:
    """``draw(figure)`` on a fresh figure, as an <svg> element: text as paths, no metadata, ids seeded by ``salt``."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": salt, "font.size": 9}):
        fig = Figure(figsize=size)  # drawn ~560 px wide in the page: text close to the page's own size
        FigureCanvasAgg(fig)  # a renderer to measure the labels with before they are placed
        fig.subplots_adjust(left=0.13, right=0.97, top=0.92, bottom=0.24)
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg"):], flags=re.DOTALL)  # RDF boilerplate
    return text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(title)}" ', 1)


def log_x_percent_y(ax, xlabel: str, ylabel: str) -> None:
    """A log x axis with plain tick labels (minor ones too when it spans under 100x), a percent y axis, a light grid."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 3.0, 5.0)))
    ax.xaxis.set_minor_formatter(plain if hi / lo < 100 else NullFormatter())
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", color="#e6e6e6", linewidth=0.7)
    ax.set_axisbelow(True)


def _draw(ax, all_series: list[Series], axis: str):
    """The points, intervals, frontiers, reference lines and rings; returns ``placing()``, which names the points
    and lines once the figure's layout is settled and returns the key lines of the caption."""
    single = len(all_series) == 1
    lines = []  # (accuracy, text, colour) of the horizontal reference lines, named once the axes are settled
    bottom, top, floor_y = _accuracy_range(all_series)
    drawn = {}  # id(point) -> y it is drawn at (a variant far below the others sits on the axis floor)
    for s in all_series:
        for p in s.points:
            off = p.accuracy < bottom
            drawn[id(p)] = floor_y if off else p.accuracy
            yerr = None
            if p.ci95 and not off:
                yerr = [[max(p.accuracy - p.ci95[0], 0.0)], [max(p.ci95[1] - p.accuracy, 0.0)]]
            ax.errorbar([p.x], [drawn[id(p)]], yerr=yerr, fmt="v" if off else KINDS[p.kind][0], color=p.colour,
                        ecolor=p.colour, elinewidth=0.9, capsize=2.5, markersize=9 if p.kind == "teacher" else 5.5,
                        zorder=3)
            if p.shipped:
                ax.scatter([p.x], [drawn[id(p)]], s=340, marker="s", facecolors="none", edgecolors=SHIPPED,
                           linewidths=1.3, zorder=4)
        front = [s.points[i] for i in pareto_front([(p.x, p.accuracy) for p in s.points])]
        if len(front) > 1:
            ax.step([p.x for p in front], [p.accuracy for p in front], where="post", color=s.colour, alpha=0.55,
                    linewidth=1.4, zorder=2)
        if s.teacher_accuracy is not None:
            ax.axhline(s.teacher_accuracy, color=s.colour, linestyle="--", linewidth=0.9, alpha=0.7, zorder=1)
            lines.append((s.teacher_accuracy, f"teacher {s.teacher_accuracy:.1%}" + ("" if single else f" ({s.name})"),
                          s.colour))
        if single and s.floor_accuracy is not None:
            ax.axhline(s.floor_accuracy, color="#2ca02c", linestyle=":", linewidth=1.0, zorder=1)
            lines.append((s.floor_accuracy, f"{s.floor:.0%} retention floor", "#2ca02c"))
        rec = next((p for p in s.points if p.label == s.recommended), None)
        if rec:
            ax.scatter([rec.x], [drawn[id(rec)]], s=260, facecolors="none", edgecolors=RING if single else s.colour,
                       linewidths=1.8, zorder=4)
    ax.margins(x=0.12)
    ax.set_ylim(bottom - (bottom - floor_y) * 2 if floor_y < bottom else bottom, top)
    log_x_percent_y(ax, AXES[axis][0], Y_LABEL)
    ringed = {id(p) for s in all_series for p in s.points if p.label == s.recommended}
    return lambda: _place_labels(ax, [(p, drawn[id(p)]) for s in all_series for p in s.points], lines, ringed)


def _accuracy_range(all_series: list[Series]) -> tuple[float, float, float]:
    """(bottom, top, floor_y) of the accuracy axis. It spans the variants within FOCUS of the best one (with
    their intervals, the teacher and the retention floor), so an untrained baseline at chance does not squash
    the ones that matter; variants further down are drawn at floor_y, a strip below ``bottom``."""
    points = [p for s in all_series for p in s.points]
    best = max(p.accuracy for p in points)
    near = [p for p in points if p.accuracy >= best - FOCUS]
    values = [v for p in near for v in (p.ci95 or (p.accuracy, p.accuracy))] + [p.accuracy for p in near]
    values += [y for s in all_series for y in (s.teacher_accuracy, s.floor_accuracy) if y is not None]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.08, 0.004)
    bottom, top = lo - pad, hi + pad
    floor_y = bottom - pad if any(p.accuracy < bottom for p in points) else bottom
    return bottom, top, floor_y


def _place_labels(ax, points: list[tuple[Point, float]], lines: list[tuple[float, str, str]],
                  ringed: set[int]) -> list[str]:
    """Name the reference lines (above or below, at the left edge, the right edge or the middle), then every
    point (the ringed and shipped ones first), each where it covers no marker, interval or other label
    (compress/reports/labels.py). Points drawn below the axis range have their accuracy in the label. Returns
    the caption's key: what each number names, and any label with no free place."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    scale = 72.0 / fig.dpi  # display pixels -> points
    box = ax.get_window_extent()
    frame = (box.x0 * scale, box.y0 * scale, box.x1 * scale, box.y1 * scale)
    ylim = ax.get_ylim()

    def at(x, y):
        return tuple(c * scale for c in ax.transData.transform((x, y)))

    def size(text):  # width as the SVG's text paths are drawn (Agg's hinted width is ~3% short), height of a line
        probe = ax.annotate(text, (0, 0), xycoords="figure points", fontsize=LABEL_SIZE)
        height = probe.get_window_extent(renderer).height * scale
        probe.remove()
        width = TextToPath().get_text_width_height_descent(text, FontProperties(size=LABEL_SIZE), ismath=False)[0]
        return width + 1.0, height

    taken, order = [], []
    for p, y in points:
        cx, cy = at(p.x, y)
        r = 10.5 if p.shipped else 9.5 if id(p) in ringed else 7.0 if p.kind == "teacher" else 4.5
        taken.append((cx - r, cy - r, cx + r, cy + r))
        if p.ci95 and y == p.accuracy:
            lo, hi = at(p.x, max(p.ci95[0], ylim[0]))[1], at(p.x, min(p.ci95[1], ylim[1]))[1]
            taken.append((cx - 3, lo, cx + 3, hi))
        label = p.label if y == p.accuracy else f"{p.label} ({p.accuracy:.1%}, off scale)"
        order.append((0 if p.shipped or id(p) in ringed else 1, labels.Label(label, cx, cy, r, size(label), size("⑩"))))
    key = []
    for y, text, colour in lines:  # above or below the line, at the left edge, the right edge or the middle
        ly, (w, h) = at(1.0, y)[1], size(text)
        middle = (frame[0] + frame[2]) / 2
        spots = [(rect, ha) for y0 in (ly + 1, ly - 1 - h) for rect, ha in (
            ((frame[0] + 3, y0, frame[0] + 3 + w, y0 + h), "left"), ((frame[2] - 3 - w, y0, frame[2] - 3, y0 + h), "right"),
            ((middle - w / 2, y0, middle + w / 2, y0 + h), "center"))]
        slide = [frame[0] + 3 + 12 * i for i in range(int((frame[2] - frame[0] - w - 6) / 12) + 1)]  # then along it
        spots += [((x0, y0, x0 + w, y0 + h), "left") for y0 in (ly + 1, ly - 1 - h) for x0 in slide]
        spot = next(((rect, ha) for rect, ha in spots if labels.free(rect, taken, frame)), None)
        if spot is None:
            key.append(f"{text} (dashed line, no room to name it on the plot)")
            continue
        taken.append(spot[0])
        _text(ax, labels.Placed(text, *spot, False, text), colour)
    placed = labels.place([lab for _, lab in sorted(order, key=lambda o: o[0])], taken, frame)
    for lab, where in zip([lab for _, lab in sorted(order, key=lambda o: o[0])], placed):
        if where.rect is None:
            key.append(f"{where.name} (no room to name it on the plot)")
            continue
        _text(ax, where, "#222222")
        if where.text != where.name:
            key.append(f"{where.text} {where.name}")
        if where.leader:
            _leader(ax, where.rect, lab)
    return key


def _leader(ax, rect, lab) -> None:
    """A thin line from a far label's box to the edge of its point's marker (a line, not an annotation: the
    page test takes every text of the SVG for a label, and a leader is none)."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import Affine2D

    x0, y0, x1, y1 = rect
    tx, ty = min(max(lab.x, x0), x1), min(max(lab.y, y0), y1)  # the nearest point of the label's box
    dx, dy = lab.x - tx, lab.y - ty
    length = (dx * dx + dy * dy) ** 0.5
    if length <= lab.radius:
        return
    end = (lab.x - dx / length * lab.radius, lab.y - dy / length * lab.radius)
    points = Affine2D().scale(1 / 72) + ax.figure.dpi_scale_trans  # points from the figure's lower left corner
    ax.add_artist(Line2D([tx, end[0]], [ty, end[1]], transform=points, color="#888888", linewidth=0.6, zorder=4,
                         clip_on=False))


def _text(ax, where, colour: str) -> None:
    """A placed label drawn at its rectangle (in points from the figure's lower left corner)."""
    ax.annotate(where.text, labels.anchor(where), xycoords="figure points", ha=where.ha, va="bottom",
                fontsize=LABEL_SIZE, color=colour, zorder=5, annotation_clip=False)


def _legend(fig, all_series: list[Series]) -> None:
    from matplotlib.lines import Line2D

    single = len(all_series) == 1
    kinds = [k for k in KINDS if any(p.kind == k for s in all_series for p in s.points)]
    handles = [Line2D([], [], marker=KINDS[k][0], linestyle="", color=KINDS[k][1] if single else "#555555",
                      markersize=8 if k == "teacher" else 5.5, label=KINDS[k][2]) for k in kinds]
    if not single:
        handles += [Line2D([], [], color=s.colour, linewidth=6, label=s.name) for s in all_series]
    handles.append(Line2D([], [], color="#555555", alpha=0.55, linewidth=1.4, drawstyle="steps-post",
                          label="Pareto frontier"))
    handles.append(Line2D([], [], color="#555555", linestyle="--", linewidth=0.9, label="teacher accuracy"))
    if any(s.recommended for s in all_series):
        floors = {s.floor for s in all_series if s.floor}
        text = "recommended" + (f" (>= {floors.pop():.0%} retention)" if len(floors) == 1 else "")
        handles.append(Line2D([], [], marker="o", linestyle="", markersize=12, markerfacecolor="none",
                              markeredgecolor=RING if single else "#555555", markeredgewidth=1.8, label=text))
    if any(p.shipped for s in all_series for p in s.points):
        handles.append(Line2D([], [], marker="s", linestyle="", markersize=13, markerfacecolor="none",
                              markeredgecolor=SHIPPED, markeredgewidth=1.3, label="shipped (ship.variant)"))
    long = max(len(h.get_label()) for h in handles) > 30  # runs named by their folders
    fig.legend(handles=handles, loc="outside lower center", ncol=2 if long else 3, fontsize=7.5, frameon=False)
