"""The fallback ladder: what an int8 variant tries when its first setting loses too much accuracy.

A rung is one setting, quantized and measured: accuracy on the held-out rows, the drop in points
against the fp32 parent on the same rows, the parity checklist against PyTorch, and a short
latency. The configured setting is tried first and kept when it is inside the budget. Otherwise
every further rung is tried (per-channel; then the most sensitive nodes kept in fp32; then, for a
static variant, dynamic quantization) and the fastest rung inside the budget is kept: a rung that
keeps accuracy by giving back all the speed is not what int8 is for, and the next rung is not
always slower. None inside: the run fails, listing every rung.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from compress.errors import CompressError


@dataclass
class Rung:
    name: str  # configured | per_channel | exclude_sensitive | dynamic
    settings: dict
    accuracy: float | None = None
    drop: float | None = None  # points of accuracy lost against the parent (negative: gained)
    latency_ms: float | None = None
    parity_ok: bool = False
    problems: list[str] = field(default_factory=list)  # why it cannot be kept besides the budget
    path: Path | None = None
    size_bytes: int | None = None
    extra: dict = field(default_factory=dict)  # graph used, nodes excluded, ...
    kept: bool = False

    def within(self, budget: float) -> bool:
        return self.drop is not None and self.drop <= budget + 1e-9 and self.parity_ok and not self.problems

    def describe(self, budget: float) -> str:
        if self.drop is None:
            return f"{self.name} ({self.settings.get('describe', '')}): {'; '.join(self.problems) or 'not measured'}"
        verdict = "inside" if self.drop <= budget + 1e-9 else "over"
        text = (f"{self.name} ({self.settings.get('describe', '')}): accuracy {self.accuracy:.4f}, drop "
                f"{self.drop:+.2f} points ({verdict} budget {budget:g})")
        if not self.parity_ok or self.problems:
            text += f"; {'; '.join(self.problems) or 'parity check failed'}"
        return text

    def record(self) -> dict:
        return {"rung": self.name, "settings": self.settings, "accuracy": self.accuracy, "drop_points": self.drop,
                "latency_ms": self.latency_ms, "parity_ok": self.parity_ok, "problems": self.problems,
                "size_bytes": self.size_bytes, **self.extra, "kept": self.kept}


def select(rungs: list[Rung], budget: float) -> Rung | None:
    """The fastest rung inside the budget (and passing parity); None when there is none.
    Ties on latency go to the earlier rung, the simpler setting."""
    inside = [r for r in rungs if r.within(budget) and r.latency_ms is not None]
    return min(inside, key=lambda r: r.latency_ms) if inside else None


def walk(candidates: Iterator[Rung], budget: float, ladder: bool) -> tuple[Rung | None, list[Rung]]:
    """Try the first rung; over the budget (and with ``ladder``), try the rest and keep the fastest
    inside it. Returns the kept rung (marked) or None, and every rung tried."""
    tried = [next(candidates)]
    if not tried[0].within(budget) and ladder:
        tried += list(candidates)
    kept = tried[0] if tried[0].within(budget) else select(tried, budget)
    if kept is not None:
        kept.kept = True
    return kept, tried


def failure(variant: str, key: str, budget: float, parent: str, parent_accuracy: float, rows: int,
            tried: list[Rung]) -> CompressError:
    """One line saying what was asked, then one per rung with its accuracy drop."""
    head = (f"{key}: {variant}: no setting keeps accuracy within {budget:g} points of {parent} "
            f"({parent_accuracy:.4f} on {rows} held-out rows); raise {key}.budget or drop the variant. Tried:")
    return CompressError(head, *(f"  {variant} {r.describe(budget)}" for r in tried))


def lazily(*makers: Callable[[], Rung | None]) -> Iterator[Rung]:
    """Rungs built only when the walk asks for them; a maker returning None is a rung that does not apply."""
    for make in makers:
        rung = make()
        if rung is not None:
            yield rung
