"""Where a plot's labels go: beside their points and never over one another, a marker or an error bar.

Geometry only (rectangles in points, y upwards, as matplotlib's display space scaled to points), so it can be
tested without drawing. Each label is tried at a few offsets around its point, nearest first; the first free
one is taken. A name that finds no free place becomes a number (① ②, then (11)), tried near the point
and then further out with a thin leader line; the caption lists what each number names. A label that cannot be
placed anywhere free (an axes crowded past reading) is left off and says so (``Placed.rect`` None).
"""

from __future__ import annotations

from dataclasses import dataclass

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1

GAP = 2.5  # points between a marker's edge and its label
CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩"  # DejaVu Sans, the plots' font, has these ten; then (11), (12)...


@dataclass
class Label:
    """A label to place: its text, its size (points) and the point it names, with the marker's radius."""

    text: str
    x: float
    y: float
    radius: float
    size: tuple[float, float]  # width, height
    number_size: tuple[float, float] = (8.0, 9.0)  # of a circled number, should its name not fit


@dataclass
class Placed:
    text: str  # what is drawn: the name, or a number
    rect: Rect | None  # None: no free place (not drawn)
    ha: str  # left | right | center, of ``rect`` against the text's anchor (rect's x0, x1 or middle)
    leader: bool  # far from its point: draw a line to it
    name: str  # the label's own text


def overlap_area(a: Rect, b: Rect) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def inside(rect: Rect, frame: Rect) -> bool:
    return rect[0] >= frame[0] and rect[1] >= frame[1] and rect[2] <= frame[2] and rect[3] <= frame[3]


def around(x: float, y: float, distance: float, size: tuple[float, float]) -> list[tuple[Rect, str]]:
    """Rectangles of ``size`` at ``distance`` from (x, y): right, left, above and below it, then the four
    diagonals; each with the alignment its text is drawn with."""
    w, h = size
    d = distance
    return [((x + d, y - h / 2, x + d + w, y + h / 2), "left"), ((x - d - w, y - h / 2, x - d, y + h / 2), "right"),
            ((x - w / 2, y + d, x + w / 2, y + d + h), "center"), ((x - w / 2, y - d - h, x + w / 2, y - d), "center"),
            ((x + d * 0.7, y + d * 0.7, x + d * 0.7 + w, y + d * 0.7 + h), "left"),
            ((x - d * 0.7 - w, y + d * 0.7, x - d * 0.7, y + d * 0.7 + h), "right"),
            ((x + d * 0.7, y - d * 0.7 - h, x + d * 0.7 + w, y - d * 0.7), "left"),
            ((x - d * 0.7 - w, y - d * 0.7 - h, x - d * 0.7, y - d * 0.7), "right")]


def free(rect: Rect, taken: list[Rect], frame: Rect) -> bool:
    return inside(rect, frame) and not any(overlap_area(rect, t) > 0 for t in taken)


def place(labels: list[Label], obstacles: list[Rect], frame: Rect, number_from: int = 1) -> list[Placed]:
    """A place for every label, in order (put the ones that matter most first): no placed rectangle overlaps
    another, an obstacle (markers, error bars, other text) or leaves ``frame``. Numbers count from
    ``number_from``."""
    taken = list(obstacles)
    out: list[Placed | None] = [None] * len(labels)
    waiting = []
    for i, lab in enumerate(labels):  # names first, each at its nearest free place
        spot = next(((r, ha) for d in (lab.radius + GAP, lab.radius + GAP + 6)
                     for r, ha in around(lab.x, lab.y, d, lab.size) if free(r, taken, frame)), None)
        if spot:
            taken.append(spot[0])
            out[i] = Placed(lab.text, spot[0], spot[1], False, lab.text)
        else:
            waiting.append(i)
    number = number_from
    for i in waiting:  # then numbers, in rings further and further out
        lab = labels[i]
        text = CIRCLED[number - 1] if number <= len(CIRCLED) else f"({number})"
        number += 1
        size = lab.number_size if number - 1 <= len(CIRCLED) else (lab.number_size[0] * 3, lab.number_size[1])
        rings = [lab.radius + GAP + step for step in (0, 6, 14, 24, 36, 50, 70, 95, 125)]
        spot = next(((r, ha, d) for d in rings for r, ha in around(lab.x, lab.y, d, size) if free(r, taken, frame)),
                    None)
        if spot:
            taken.append(spot[0])
            out[i] = Placed(text, spot[0], spot[1], spot[2] > lab.radius + GAP + 10, lab.text)
        else:
            out[i] = Placed(text, None, "left", False, lab.text)
    return out  # type: ignore[return-value]


def anchor(p: Placed) -> tuple[float, float]:
    """Where the text of a placed label is anchored (its rect's bottom, at the edge its alignment names)."""
    x0, y0, x1, _ = p.rect
    return {"left": x0, "right": x1, "center": (x0 + x1) / 2}[p.ha], y0
