"""``key=value`` overrides of a pipeline's mapping (``distill.temperature=2``, ``quantize.variants.0.budget=2``):
the command line's, and a sweep point's settings. Values are parsed as YAML."""

from __future__ import annotations

from typing import Any

import yaml

from compress.errors import ascii_only


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> list[str]:
    """Set ``a.b.c=value`` (value parsed as YAML) into ``raw`` in place; return the problems."""
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            problems.append(f"override {ascii_only(repr(item))}: expected key=value, e.g. distill.temperature=2")
            continue
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = _child(node, part, parts[depth + 1])
            if child is None:
                where = ".".join(parts[: depth + 1])
                problems.append(f"override {ascii_only(key)}: {ascii_only(where)} is not a mapping, nor a list with an "
                                f"item {ascii_only(parts[depth + 1])}")
                break
            node = child
        else:
            if isinstance(node, list):
                node[int(parts[-1])] = value  # _child checked the index
            else:
                node[parts[-1]] = value
    return problems


def _child(node: dict | list, part: str, next_part: str) -> dict | list | None:
    """The mapping or list under ``part``, created as a mapping when missing; a list is indexed by
    position (``quantize.variants.0.budget=2``). None when the path cannot go on."""
    if isinstance(node, list):
        child = node[int(part)] if part.isdigit() and int(part) < len(node) else None
    else:
        child = node.setdefault(part, {})
    if isinstance(child, list) and not (next_part.isdigit() and int(next_part) < len(child)):
        return None
    return child if isinstance(child, (dict, list)) else None
