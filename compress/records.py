"""Typed records: what passes between stages and out of the tool."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Check:
    """One line of a checklist (compress verify); ``problem`` (the error line) is set when it failed."""

    what: str
    detail: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None
