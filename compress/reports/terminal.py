"""Tables that fit the terminal: the summary tables of compress run and compress report.

A table never truncates a cell. When the terminal is too narrow for every column, columns are left out one at a
time in the order the table states (``Column.drop``: 1 goes first; None is never left out) until the rest fits,
and a note under the table names what was left out. ``--wide`` keeps every column and prints the table at its
full width, however narrow the terminal (it then wraps at the terminal's edge, not inside a cell).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    right: bool = True  # numbers are right-aligned
    drop: int | None = None  # order in which it is left out on a narrow terminal (1 first); None: always shown


def fitted(console, columns: list[Column], rows: list[list[str]], wide: bool = False) -> tuple[list[int], int]:
    """(indices of the columns to show, the width to print at). Every column with ``wide`` or when all fit;
    otherwise the droppable columns go, lowest ``drop`` first, until the table fits ``console.width``."""
    shown = list(range(len(columns)))
    needed = table_width(columns, rows, shown)
    if wide:
        return shown, max(console.width, needed)
    for i in sorted((i for i, c in enumerate(columns) if c.drop is not None), key=lambda i: columns[i].drop):
        if needed <= console.width:
            break
        shown.remove(i)
        needed = table_width(columns, rows, shown)
    return shown, console.width


def table_width(columns: list[Column], rows: list[list[str]], shown: list[int]) -> int:
    """Characters a rich Table with the default box takes for ``shown`` columns without wrapping a cell:
    each column its widest line plus one space each side, and a rule between and around columns."""
    widths = [max([_longest(columns[i].name)] + [_longest(row[i]) for row in rows]) for i in shown]
    return sum(w + 2 for w in widths) + len(shown) + 1


def table(console, title: str, columns: list[Column], rows: list[list[str]], wide: bool = False,
          hint: str = "--wide") -> None:
    """Print the table, fitted to the console (see the module's docstring), and a note naming any column left
    out and how to see it (``hint``: the option that shows them all)."""
    from rich.table import Table  # rich's tables are only needed here
    from rich.text import Text

    shown, width = fitted(console, columns, rows, wide)
    t = Table(title=title)
    for i in shown:  # fold, never an ellipsis, should a cell still not fit (a terminal narrower than the name)
        t.add_column(columns[i].name, justify="right" if columns[i].right else "left", overflow="fold")
    for row in rows:
        t.add_row(*(Text(row[i]) for i in shown))  # as text: a name with [brackets] is not markup
    narrow = console.width
    console.width = width  # wider than the terminal only with --wide: the terminal wraps the lines, not rich the cells
    try:
        console.print(t)
    finally:
        console.width = narrow
    left_out = [c.name.replace("\n", " ") for i, c in enumerate(columns) if i not in shown]  # a two-line heading
    if left_out:
        console.print(f"(not shown at {narrow} columns: {', '.join(left_out)}; {hint} shows all)")


def _longest(text: str) -> int:
    from rich.cells import cell_len

    return max(cell_len(line) for line in str(text).split("\n"))
