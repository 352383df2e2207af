"""What every config model shares: strict models (unknown keys and inf/nan refused) and the common types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PACKAGE_PREFIX = "package:"


class StrictModel(BaseModel):
    # inf and nan parse as YAML floats (.inf, .nan) and pass every bound check that compares: refuse them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
