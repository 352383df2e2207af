"""What every config model shares: strict models (unknown keys, inf/nan and booleans for numbers refused) and the
common types."""

from __future__ import annotations

import json
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PACKAGE_PREFIX = "package:"


class StrictModel(BaseModel):
    # inf and nan parse as YAML floats (.inf, .nan) and pass every bound check that compares: refuse them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML reads true/false, yes/no and on/off as booleans, and a Python bool is an int: pydantic would take
        ``student.layers: [0, true]`` as [0, 1] and ``seed: yes`` as 1. A boolean where the field holds numbers
        and no booleans is refused (the key is named by the caller)."""
        field = cls.model_fields.get(info.field_name or "")
        if field is None or not _numbers_only(field.annotation) or not _has_bool(value):
            return value
        if isinstance(value, bool) and not _numbers_only(field.annotation, scalar=True):
            return value  # true for a list: pydantic's own line says a list is expected
        raise ValueError(f"{json.dumps(value, default=str)} holds a YAML boolean where a number is expected (YAML reads "
                         "true/false, yes/no and on/off as booleans); give the number")


def _has_bool(value: Any, seen: set[int] | None = None) -> bool:
    """Whether ``value`` is or holds a bool (a YAML anchor that contains itself is walked once)."""
    if isinstance(value, bool):
        return True
    if not isinstance(value, (list, tuple, dict)):
        return False
    seen = set() if seen is None else seen
    if id(value) in seen:
        return False
    seen.add(id(value))
    items = value.values() if isinstance(value, dict) else value
    return any(_has_bool(v, seen) for v in items)


def _numbers_only(annotation: Any, scalar: bool = False) -> bool:
    """Whether a field's type holds numbers (int, float, a Literal of them) and nowhere a bool or Any: there a
    boolean can only be a mistake. ``scalar``: the number itself, not inside a list or mapping."""
    kinds = set()

    def walk(t: Any) -> None:
        if scalar and typing.get_origin(t) in (list, tuple, dict, set):
            return
        if t is Any or t is bool:
            kinds.add("bool")
        elif t in (int, float):
            kinds.add("number")
        elif typing.get_origin(t) is Literal:
            for v in typing.get_args(t):
                kinds.add("bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else "other")
        elif isinstance(t, type) and issubclass(t, BaseModel):
            kinds.add("bool")  # a nested model checks its own fields
        else:
            for arg in typing.get_args(t):
                walk(arg)

    walk(annotation)
    return "number" in kinds and "bool" not in kinds
