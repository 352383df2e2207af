"""Reading a pipeline: YAML (safe loader, a key set twice refused), ``key=value`` overrides, validation.

Defaults < YAML file < ``key=value`` overrides on the command line. Every problem is reported at once,
one line each, named by its key path (``distill.temperature: must be > 0, got -1``), through
:class:`compress.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ValidationError

from compress.config.opsets import check_opset
from compress.config.overrides import apply_overrides
from compress.config.paths import DEFAULT_RUNS, check_paths, check_run_paths
from compress.config.rules import check_combinations, check_sources
from compress.config.schema import PipelineConfig
from compress.config.sweep import check_points
from compress.errors import ConfigError, ascii_only

_KEY_PATH = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)+: ")


Rules = Callable[[PipelineConfig], list[str]]


def load_config(path: str | Path, overrides: list[str] | None = None, rules: Rules | None = None,
                runs_dir: Path = DEFAULT_RUNS) -> PipelineConfig:
    """Read ``path`` (YAML, safe_load only), apply ``key=value`` overrides, validate everything
    (with a ``sweep:`` block, every point's own config too). ``rules(cfg)``: more problems to refuse, found by a
    layer above the config (compress.tasks passes what the config's task refuses). ``runs_dir``: where the run
    folder will go (compress run's --runs-dir), whose paths are checked with the config's own."""
    try:
        cfg = validate_config(load_raw(path, overrides), rules)
    except RecursionError:  # [[[[...]]]] thousands deep, or an anchor that contains itself (&a [*a])
        raise ConfigError(f"{path}: nested too deeply (or a YAML anchor refers to itself); a pipeline is a "
                          "mapping a few levels deep") from None
    problems = check_run_paths(cfg, runs_dir)
    if problems:
        raise ConfigError(*problems)
    return cfg


def load_raw(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The YAML mapping of ``path`` with the overrides applied, not validated yet."""
    raw = read_yaml_mapping(Path(path))
    problems = apply_overrides(raw, overrides or [])
    if problems:
        raise ConfigError(*problems)
    return raw


def validate_config(raw: dict[str, Any], rules: Rules | None = None) -> PipelineConfig:
    """The config of a raw mapping; every problem at once as a ConfigError. A sweep's points are each validated
    the same way (``rules`` included)."""
    problems = yaml_types(raw)
    if problems:
        raise ConfigError(*problems)
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(*format_validation_error(exc)) from None
    problems = check_combinations(cfg) + check_sources(cfg) + check_paths(cfg) + check_opset(cfg)
    problems += rules(cfg) if rules else []
    if cfg.sweep is not None and not problems:
        problems = check_points(raw, cfg.sweep, lambda point: validate_config(point, rules))
    if problems:
        raise ConfigError(*problems)
    return cfg


# What yaml.safe_load makes that no pipeline value is: bytes (!!binary) and sets (!!set). pydantic would take bytes
# as text (name: !!binary dGlueQ== becomes "tiny") and a set as a list in no stated order.
_NOT_CONFIG = {bytes: ("!!binary", "bytes", "write the text itself"),
               set: ("!!set", "a set, in no order", "write a list: [a, b]")}


def yaml_types(raw: Any, key: str = "", seen: set[int] | None = None) -> list[str]:
    """One line per value (or key) of a YAML type no setting takes, named by its key path (an anchor that contains
    itself is walked once: the schema says what is wrong with it)."""
    seen = set() if seen is None else seen
    if isinstance(raw, (dict, list, tuple)):
        if id(raw) in seen:
            return []
        seen.add(id(raw))
    problems = []
    kind = next((v for t, v in _NOT_CONFIG.items() if isinstance(raw, t)), None)
    if kind is not None:
        tag, what, fix = kind
        shown = raw if len(repr(raw)) <= 40 else f"{repr(raw)[:37]}..."
        problems.append(f"{key or '<top>'}: a {tag} value ({what}: {shown!r}), but pipeline values are text, numbers, "
                        f"booleans, lists and mappings; {fix}")
    elif isinstance(raw, dict):
        for k, v in raw.items():
            if isinstance(k, (bytes, set, frozenset)):
                problems.append(f"{key or '<top>'}: a key that is {type(k).__name__} ({k!r}); keys are text")
                continue
            problems += yaml_types(v, f"{key}.{ascii_only(str(k))}" if key else ascii_only(str(k)), seen)
    elif isinstance(raw, (list, tuple)):
        for i, v in enumerate(raw):
            problems += yaml_types(v, f"{key}.{i}", seen)
    return problems


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_SafeUniqueLoader)
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}:{exc.line}: {ascii_only(exc.key)}: duplicate key (first set on line {exc.first}); "
                          "YAML would silently keep the last one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "constructor for the tag" in problem:
            problem += " (YAML tags such as !!python/object are refused: pipelines are read with yaml.safe_load)"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        raise ConfigError(f"{path}: file is empty; expected a mapping with name, data and teacher")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, line: int, first: int):
        super().__init__(f"{key}: duplicate key")
        self.key, self.line, self.first = key, line, first


class _SafeUniqueLoader(yaml.SafeLoader):
    """yaml.safe_load (the same safe constructors: no Python tags), refusing a key set twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeLoader's own check reports it, with its line
                if key in seen:
                    raise DuplicateKeyError(str(key), key_node.start_mark.line + 1, seen[key])
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def format_validation_error(exc: ValidationError) -> list[str]:
    lines, seen = [], set()
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = _describe(err, loc)
        named = err["type"] == "value_error" and _KEY_PATH.match(msg)  # the validator named the key itself
        # keys are ASCII: a look-alike letter (a Cyrillic a) or a zero-width space in one is shown escaped
        line = msg if named else f"{ascii_only('.'.join(map(str, loc))) or '<top>'}: {msg}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def _describe(err: dict[str, Any], loc: tuple) -> str:
    kind, ctx, got = err["type"], err.get("ctx", {}), err.get("input")
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(_plain(str(loc[-1])), valid, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown key{hint} (valid: {', '.join(valid)})"
    if kind == "missing":
        return "required key is missing"
    if kind in bounds:
        limit = next(iter(ctx.values()))
        limit = int(limit) if isinstance(limit, float) and limit.is_integer() else limit
        return f"must be {bounds[kind]} {limit}, got {_short(got)}"
    if kind == "literal_error":  # the choices are ASCII: a look-alike letter in the value is shown escaped
        return f"must be one of {ctx.get('expected')}, got {_short(got, ascii)}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}, got {_short(got, ascii)}"
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, ")
    return f"{err['msg'][0].lower()}{err['msg'][1:]}, got {_short(got)}"


def _plain(key: str) -> str:
    """A key without its invisible characters, for the closest valid key (alph\u200ba -> alpha)."""
    return "".join(ch for ch in key if ch.isprintable())


def _short(value: Any, show: Callable[[Any], str] = repr) -> str:
    text = show(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields_at(loc: tuple) -> list[str]:
    """Valid keys of the config model found by walking ``loc`` down from PipelineConfig."""
    model: type[BaseModel] | None = PipelineConfig
    for part in loc:
        field = model.model_fields.get(str(part)) if model else None
        model = _model_of(field.annotation) if field else None
    return sorted(model.model_fields) if model else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found:
            return found
    return None


def dump_yaml(cfg: PipelineConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
