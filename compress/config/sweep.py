"""A sweep's points, worked out from the config alone: what each point sets, its name, its config, and
every problem of the sweep found when the file is loaded. Running the points is compress/sweep.py.

``grid`` maps dotted config keys to lists of values (every combination is a point); ``points`` lists
named settings, each crossed with the grid keys it does not set itself. Each point is the base config
with its settings applied as ``key=value`` overrides (defaults < YAML < command line < the point).
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from typing import Any, Callable

import yaml

from compress.config.overrides import apply_overrides
from compress.config.schema import PipelineConfig, SweepConfig
from compress.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Point:
    name: str  # its folder under runs/<name>/points/
    entry: str | None  # the name of its entry in sweep.points (None: the grid alone)
    settings: dict[str, Any]  # dotted key -> value: the entry's own settings, then its grid values
    grid: dict[str, Any]  # the grid values it took

    @property
    def overrides(self) -> list[str]:
        """The settings as ``compress run`` overrides: ``compress run BASE.yaml <these>`` reruns the point."""
        return [f"{key}={yaml_value(value)}" for key, value in self.settings.items()]


def yaml_value(value: Any) -> str:
    """``value`` as the YAML text an override parses back into it ([0, 2, 4], 0.5, true, null)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def label(key: str, value: Any) -> str:
    """A grid value in a point's name: ``distill.temperature`` 4.0 -> temperature4; [0, 2, 4] -> layers0-2-4."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", yaml_value(value)).strip("-")
    return f"{key.rsplit('.', 1)[-1]}{slug}"


def expand(sweep: SweepConfig) -> list[Point]:
    """Every point, in order: each entry of ``points`` (or one empty entry) times the grid keys it leaves open."""
    out = []
    for entry in sweep.points or [{}]:
        own = {k: v for k, v in entry.items() if k != "name"}
        crossed = [k for k in sweep.grid if k not in own]
        for values in itertools.product(*(sweep.grid[k] for k in crossed)):
            grid = dict(zip(crossed, values))
            parts = ([str(entry["name"])] if "name" in entry else []) + [label(k, v) for k, v in grid.items()]
            out.append(Point("_".join(parts) or "base", entry.get("name"), {**own, **grid}, grid))
    return out


def base_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """The pipeline a point starts from: the file (with the command-line overrides) without its sweep block."""
    return {k: copy.deepcopy(v) for k, v in raw.items() if k != "sweep"}


def point_raw(raw: dict[str, Any], point: Point) -> dict[str, Any]:
    """The point's config mapping, named ``<sweep name>-<point>``; raises ConfigError on a bad path."""
    mapping = base_raw(raw)
    problems = apply_overrides(mapping, [*point.overrides, f"name={raw['name']}-{point.name}"])
    if problems:
        raise ConfigError(*problems)
    return mapping


Validate = Callable[[dict[str, Any]], PipelineConfig]  # a raw mapping -> its config, or ConfigError


def point_config(raw: dict[str, Any], point: Point, validate: Validate) -> PipelineConfig:
    return validate(point_raw(raw, point))


def check_points(raw: dict[str, Any], sweep: SweepConfig, validate: Validate) -> list[str]:
    """Every problem of the sweep at load time, one line each, naming the grid key or the point (each point's
    config through ``validate``, as the pipeline file's own): the
    entries' names, then each grid value on the base config, then each entry's own settings, then (when
    those are fine) every point, each problem once."""
    problems = []
    names = [e.get("name") for e in sweep.points]
    for i, entry in enumerate(sweep.points):
        where = f"sweep.points.{i}"
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}.name: every point needs a name of letters, digits, '.', '_' or '-' "
                            f"(it names the point's folder), got {name!r}")
        elif names.count(name) > 1 and names.index(name) != i:
            problems.append(f"{where}.name: {name} is used twice; every point needs its own name")
        for key in entry:
            if key != "name" and (not isinstance(key, str) or key.split(".")[0] in ("name", "sweep")):
                problems.append(f"{where} ({name}): {key}: a point sets pipeline settings; "
                                "name and the sweep itself are not among them")
    for key in sweep.grid:
        if key.split(".")[0] in ("name", "sweep"):
            problems.append(f"sweep.grid.{key}: a grid varies pipeline settings; name and the sweep itself are not among them")
    if problems:
        return problems
    for key, values in sweep.grid.items():
        for value in values:
            problems += [f"sweep.grid: {p}" for p in _problems(raw, validate, {key: value})]
    for i, entry in enumerate(sweep.points):
        own = {k: v for k, v in entry.items() if k != "name"}
        problems += [f"sweep.points.{i} ({entry['name']}): {p}" for p in _problems(raw, validate, own)]
    if problems:
        return list(dict.fromkeys(problems))
    points = expand(sweep)
    seen: dict[str, list[str]] = {}
    for point in points:
        for p in _problems(raw, validate, point.settings):
            seen.setdefault(p, []).append(point.name)
    for p, where in seen.items():
        more = f" (and {len(where) - 1} more points)" if len(where) > 1 else ""
        problems.append(f"sweep point {where[0]}{more}: {p}")
    taken = [p.name for p in points]
    problems += [f"sweep: two points are both named {n}; give the entries of sweep.points distinct names"
                 for n in dict.fromkeys(n for n in taken if taken.count(n) > 1)]
    return problems


def _problems(raw: dict[str, Any], validate: Validate, settings: dict[str, Any]) -> list[str]:
    try:
        point_config(raw, Point("check", None, settings, {}), validate)
    except ConfigError as exc:
        return exc.problems
    return []
