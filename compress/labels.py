"""Class labels: the integer ids a file holds, or names (``positive``, ``Sports``) mapped to ids in a recorded order.

Which one a pipeline's data holds is decided once, on its training split (every row, before shuffling or
``data.max_train_samples``), and every split is read the same way:

- ``data.labels: [neg, pos]`` given: when some training label is one of those names, every label of every split must
  be one of them and its id is its position in the list; when none is and all are integers, they are ids
  (0..len-1) and the list names them.
- otherwise, when no training label is an integer and every one is text, the labels are names: the distinct
  names of the training split, sorted (Python's string order), are ids 0, 1, ...
- otherwise the labels are integer ids in 0..teacher.num_labels-1, as before; a hub dataset whose label column is
  a ``ClassLabel`` gives their names.

An integer label may be written as a whole number in any form: ``1``, ``1.0`` (a spreadsheet's export), ``1e0``;
it reads as ``1`` wherever it is compared (as an id, or as a name in data.labels). A number that is not whole
(``1.5``) is refused, unless data.labels lists it as a name. Integer labels that are exactly 1..teacher.num_labels
look 1-based: the error about the label teacher.num_labels says so, and how to read them.

The names travel into the teacher's config (``id2label`` / ``label2id``), from there into the student, the report
and the bundle. A label outside the set is one error naming the file, the row, the value and the valid labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable

from compress.errors import CompressError

SHOWN_NAMES = 20  # names listed in an error line before "..."


@dataclass(frozen=True)
class LabelSet:
    """How a pipeline's label values become class ids, and what the ids are called."""

    names: tuple[str, ...] = ()  # id -> name; empty: integer ids that nothing names
    by_name: bool = False  # the files hold names (else integer ids)
    origin: str = ""  # where the names come from: "data.labels", "training split 'train'", "the dataset's ClassLabel"
    hint: str = ""  # added to the error line about labels outside the set (integer labels that look 1-based)

    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def describe(self) -> str:
        """``0 = negative, 1 = positive``; empty without names."""
        return ", ".join(f"{i} = {n}" for i, n in enumerate(self.names))

    def to_dict(self) -> dict:
        """As run records keep it (the teacher's metrics, report.json's data section)."""
        return {"values": "names" if self.by_name else "ids", "names": list(self.names) or None,
                "from": self.origin or None}

    def valid(self, num_labels: int) -> str:
        """What a label may be, for an error line."""
        if self.by_name:
            shown = ", ".join(self.names[:SHOWN_NAMES]) + (", ..." if len(self.names) > SHOWN_NAMES else "")
            return f"one of the {len(self.names)} label names of {self.origin} ({shown})"
        return f"integers in 0..{num_labels - 1} (teacher.num_labels: {num_labels})"

    def to_id(self, value: Any, num_labels: int) -> int | None:
        """The class id of a label value as read from a file; None when it is not a valid label."""
        if self.by_name:
            text = as_name(value)
            return self._index.get(text) if text is not None else None
        label = as_id(value)
        return label if label is not None and 0 <= label < num_labels else None

    @cached_property
    def _index(self) -> dict[str, int]:
        return {as_name(n) or n: i for i, n in enumerate(self.names)}  # data.labels' "1.0" is the name "1"


_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")  # 1, -2, 1.0, .5, 1e3


def as_id(value: Any) -> int | None:
    """A class index: an int, a whole float (1.0), or the text of a whole number ("1", "1.0"); None for anything
    else (1.5, true, "pos", inf, a missing value)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # is_integer() is False for inf and nan
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        if number.is_integer():
            return int(value) if value.strip().lstrip("+-").isdigit() else int(number)  # exact for long digits
    return None


def is_fraction(value: Any) -> bool:
    """A number that is not whole: 1.5, "0.5", inf, nan, "1e400" (no class id)."""
    if isinstance(value, float):
        return not value.is_integer()
    return isinstance(value, str) and bool(_NUMBER.fullmatch(value.strip())) and as_id(value) is None


def as_name(value: Any) -> str | None:
    """A label name: text, whitespace-trimmed, not empty; a whole number is matched by its digits (1, 1.0 and
    "1.0" are the name "1"); None otherwise."""
    number = as_id(value)
    if number is not None:
        return str(number)
    if isinstance(value, str):
        return value.strip() or None
    return None


def decide(values: Iterable[Any], num_labels: int, explicit: list[str] | None = None,
           class_names: list[str] | None = None, split: str = "train", where: str = "") -> LabelSet:
    """The label set of a pipeline from the label values of its training split (every row, in file order).

    ``explicit``: data.labels; ``class_names``: what the source itself calls its integer classes (a hub
    ``ClassLabel``); ``where``: the training split's file or source, for error lines."""
    texts: set[str] = set()
    ids: set[int] = set()
    fractions: list[tuple[int, Any]] = []
    named = {as_name(n) for n in explicit or ()}
    for i, value in enumerate(values):
        if as_id(value) is not None:
            ids.add(as_id(value))
            texts.add(str(as_id(value)))
        elif is_fraction(value) and as_name(value) not in named:
            fractions.append((i, value))
        elif as_name(value) is not None:
            texts.add(as_name(value))
    integers = bool(ids)
    if fractions:
        shown = ", ".join(f"row {i + 1}: {short(v)}" for i, v in fractions[:3])
        raise CompressError(f"data: {len(fractions)} label(s) in split '{split}' ({where}) are numbers that are not "
                            f"whole; first: {shown}; class labels are integer ids (0, 1, ...; 1.0 reads as 1) or "
                            "names (to read numbers as names, list them in data.labels)")
    hint = one_based_hint(ids, num_labels)
    if explicit:
        if texts & named or not integers:
            return LabelSet(tuple(explicit), by_name=True, origin="data.labels")
        return LabelSet(tuple(explicit), by_name=False, origin="data.labels", hint=hint)
    if texts and not integers:
        names = tuple(sorted(texts))
        if len(names) != num_labels:
            shown = ", ".join(names[:SHOWN_NAMES]) + (", ..." if len(names) > SHOWN_NAMES else "")
            raise CompressError(f"teacher.num_labels: {num_labels}, but the training split '{split}' ({where}) has "
                                f"{len(names)} label names ({shown}); set teacher.num_labels: {len(names)}, or list "
                                f"the names in data.labels")
        return LabelSet(names, by_name=True, origin=f"training split '{split}'")
    if class_names and len(class_names) == num_labels:
        return LabelSet(tuple(str(n) for n in class_names), by_name=False, origin="the dataset's ClassLabel", hint=hint)
    return LabelSet(hint=hint)


def one_based_hint(ids: set[int], num_labels: int) -> str:
    """What to do when the integer labels are exactly 1..n: read as ids they miss 0 and overflow at n."""
    if not ids or ids != set(range(1, max(ids) + 1)) or max(ids) not in (num_labels, num_labels - 1) or max(ids) < 2:
        return ""
    n = max(ids)
    values = ", ".join(map(str, range(1, n + 1)))
    first = "" if n == num_labels else f"set teacher.num_labels: {n}, then "
    return (f"the labels look 1-based (the training split holds exactly 1..{n}): {first}subtract 1 from every "
            f"label, or set data.labels: [{values}] (each label is then its class's name; label 1 is class 0)")


def problem(bad: list[tuple[int, Any]], labels: LabelSet, num_labels: int, split: str, where: str) -> str:
    """The error line for the rows of ``split`` whose label is not valid: (row index from 0, value) each."""
    shown = ", ".join(f"row {i + 1}: {short(v)}" for i, v in bad[:3])  # data rows from 1, the header not counted
    line = (f"data: {len(bad)} label(s) in split '{split}' ({where}) are not {labels.valid(num_labels)}; "
            f"first: {shown}")
    if not labels.by_name and any(as_name(v) is not None and as_id(v) is None and not is_fraction(v) for _, v in bad):
        line += ("; label names are read as names only when no label of the training split is an integer, or "
                 "when data.labels lists them")
    if labels.hint and not labels.by_name:
        line += f"; {labels.hint}"
    return line


def short(value: Any) -> str:
    """A value as an error line shows it: its repr, cut at 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
