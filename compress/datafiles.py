"""Local data files as rows: ``<split>.tsv`` / ``.csv`` (a header row, or ``data.columns`` naming the columns of a
file without one), ``.jsonl`` (one JSON object a line) and ``.json`` (a list of objects, or ``{"data": [...]}``).

Every problem of a file is one line naming the file and its line (``path:line: what``): text that is not UTF-8,
bad CSV quoting, a row whose number of fields is not the header's, a column or JSON key named twice, JSON that
does not parse or is nested deeper than the parser allows, text that is not Unicode (a lone surrogate escape).
A header row whose cells look like data (numbers, sentences, a label repeated below) is told apart from a real
one, so that a missing column can be explained (``looks_like_data``, ``suggest_columns``).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.errors import CompressError

SUFFIXES = (".tsv", ".csv", ".jsonl", ".json")
TABLES = (".tsv", ".csv")
SAMPLE = 1000  # rows a header is compared with


@dataclass
class Table:
    """A file's rows (column -> value), its column names and whether they came from the file's own header row."""

    rows: list[dict[str, Any]]
    columns: list[str] | None  # None for JSON: each object names its fields
    headed: bool  # the first line was read as the header (False: data.columns names the columns)


def read_file(path: Path, columns: list[str] | None = None) -> Table:
    """The rows of one data file; ``columns``: the column names of a .tsv/.csv file without a header row."""
    text = read_text(path)
    if path.suffix in TABLES:
        return _read_table(path, text, columns)
    if columns:
        raise CompressError(f"data.columns: names the columns of .tsv/.csv files without a header row; {path} is "
                            f"{'JSON lines' if path.suffix == '.jsonl' else 'JSON'}, whose objects name their fields "
                            "(set data.columns: null)")
    rows = _read_jsonl(path, text) if path.suffix == ".jsonl" else _read_json(path, text)
    return Table(rows, None, False)


def read_text(path: Path) -> str:
    """The file as UTF-8 text (a leading byte-order mark dropped); otherwise one line naming the line and byte."""
    raw = path.read_bytes()
    skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start + skip
        line = raw.count(b"\n", 0, at) + 1
        raise CompressError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {at}); save the file as UTF-8") \
            from None


# ----------------------------------------------------------------------------- tsv and csv


def _read_table(path: Path, text: str, columns: list[str] | None) -> Table:
    tsv = path.suffix == ".tsv"
    csv.field_size_limit(2**31 - 1)  # a long document is a long sentence (truncated and counted), not an error
    if tsv:  # tabs separate, quotes are text (as GLUE's TSVs are written)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:  # RFC 4180: a field holding a comma, quote or line break is quoted, its quotes doubled
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []  # (line the record starts on, fields)
    start = 1
    try:
        for fields in reader:
            if fields:  # a blank line is no row
                records.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise CompressError(f"{path}:{start}: a quoted field opened on this line is never closed (CSV quoting: "
                                "a field with a comma, quote or line break is written in double quotes, each quote "
                                "inside doubled)") from None
        raise CompressError(f"{path}:{reader.line_num}: bad CSV quoting ({exc}); a field with a comma, quote or "
                            "line break is written in double quotes, each quote inside doubled") from None
    if columns:
        header, where, headed = list(columns), "data.columns names", False
        if records and _is_header(records[0][1], columns):
            raise CompressError(f"data.columns: {path} has a header row ({', '.join(records[0][1])}), but "
                                "data.columns is for files without one; remove data.columns (the header names the "
                                "columns) or the header row")
    else:
        if not records:
            return Table([], None, True)
        header, where, headed = records[0][1], f"the header (line {records[0][0]}) has", True
        records = records[1:]
        _check_header(path, header)
    width = len(header)
    rows = []
    for line, fields in records:
        if len(fields) != width:
            why = ("a tab inside the text?" if tsv else "a comma inside an unquoted field?") if len(fields) > width else \
                  "a field missing?"
            raise CompressError(f"{path}:{line}: {len(fields)} field(s), but {where} {width} ({', '.join(header)}); "
                                f"{why}")
        rows.append(dict(zip(header, fields)))
    return Table(rows, header, headed)


def _check_header(path: Path, header: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(header, 1):
        if name and name in seen:  # empty names (trailing separators) name nothing a config can ask for
            raise CompressError(f"{path}:1: column '{name}' appears twice in the header (columns {seen[name]} and "
                                f"{i}); rename one (compress would read only one of them)")
        seen.setdefault(name, i)


def _is_header(cells: list[str], columns: list[str]) -> bool:
    """Is this first row the names of ``columns`` (a header that data.columns would read as data)?"""
    names = {c.strip().lower() for c in columns}
    hits = sum(c.strip().lower() in names for c in cells)
    return hits >= max(2, len(columns) - 1)


# ----------------------------------------------------------------------------- JSON


class _Object(dict):
    """A JSON object as read; ``twice``: its keys that appear more than once (json keeps only the last)."""

    twice: list[str] = []


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        keys = [k for k, _ in pairs]
        obj.twice = sorted({k for k in keys if keys.count(k) > 1})
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_object)


def _loads(path: Path, text: str, line: int | None) -> Any:
    """One JSON value; errors name the line (``line``: the JSON line's own number in a .jsonl file)."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        where = line if line is not None else exc.lineno
        raise CompressError(f"{path}:{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        where = line if line is not None else deepest_line(text)
        raise CompressError(f"{path}:{where}: JSON nested deeper than the reader allows (about "
                            f"{_depth(text)} levels of [ and {{); a row is one object of text and label") from None


def _read_jsonl(path: Path, text: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(io.StringIO(text, newline=None), 1):
        if line.strip():
            rows.append(_loads(path, line.rstrip("\r\n"), number))
            _check_row(rows[-1], path, f"line {number}", number)
    return rows


def _read_json(path: Path, text: str) -> list[dict[str, Any]]:
    data = _loads(path, text, None)
    rows = data if isinstance(data, list) else data.get("data", []) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise CompressError(f"{path}: expected a JSON list of objects (or {{\"data\": [...]}}), got "
                            f"{type(data).__name__}")
    for i, row in enumerate(rows):
        _check_row(row, path, f"item {i}", None)
    return rows


def _check_row(row: Any, path: Path, where: str, line: int | None) -> None:
    at = f"{path}:{line}" if line is not None else f"{path}: {where}"
    if not isinstance(row, dict):
        raise CompressError(f"{path}: {where} is a JSON {type(row).__name__}; expected an object with the text and "
                            "label columns")
    if getattr(row, "twice", None):
        raise CompressError(f"{at}: key '{row.twice[0]}' appears twice in one object; keep one (JSON readers keep "
                            "only the last)")
    for key, value in row.items():
        for text in (key, value):
            if isinstance(text, str) and not _is_unicode(text):
                char = next(c for c in text if 0xD800 <= ord(c) <= 0xDFFF)
                raise CompressError(f"{at}: '{key}' holds a lone surrogate escape (\\u{ord(char):04x}), which is not "
                                    "Unicode text; fix the file's encoding")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth(text: str) -> int:
    return _scan(text)[0]


def deepest_line(text: str) -> int:
    """The line on which JSON ``text`` first reaches its deepest nesting (strings skipped)."""
    return _scan(text)[1]


def _scan(text: str) -> tuple[int, int]:
    depth = deepest = 0
    line = at = 1
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest, at = depth, line
        elif char in "]}":
            depth -= 1
        if char == "\n":
            line += 1
    return deepest, at


# ----------------------------------------------------------------------------- a header that is data

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def looks_like_data(header: list[str], rows: list[dict[str, Any]]) -> bool:
    """Does a header row look like a row of data? A cell that is a number or a sentence (4 words or more, or
    longer than 40 characters), or one that comes again in its column below (a label name), says so."""
    for i, cell in enumerate(header):
        text = cell.strip()
        if _NUMBER.fullmatch(text) or len(text.split()) >= 4 or len(text) > 40:
            return True
        if text and any(row.get(cell) == cell for row in rows[:SAMPLE]):
            return True
    return False


def suggest_columns(header: list[str], rows: list[dict[str, Any]], text_column: str, label_column: str) -> list[str]:
    """Names for the columns of a file whose first row is data: the column with the fewest distinct short values
    is the label, the one with the longest values the text, the others column<i>."""
    if len(header) < 2:
        return [text_column]
    values = [[cell] + [str(row.get(cell, "")) for row in rows[:SAMPLE]] for cell in header]
    label = min(range(len(header)), key=lambda i: (len(set(values[i])), _mean_length(values[i])))
    text = max((i for i in range(len(header)) if i != label), key=lambda i: _mean_length(values[i]))
    return [label_column if i == label else text_column if i == text else f"column{i + 1}" for i in range(len(header))]


def _mean_length(values: list[str]) -> float:
    return sum(map(len, values)) / max(len(values), 1)


def short(text: str, width: int = 30) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
