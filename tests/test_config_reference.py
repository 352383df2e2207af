"""docs/configuration.md is generated from the config models; every key has a description."""

from pathlib import Path

import pytest

from compress.config import reference

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_reference_is_up_to_date():
    expected = reference.markdown()
    actual = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert actual == expected, (f"{DOC.name} is out of date with compress/config/schema.py; regenerate it with: "
                                f"{reference.COMMAND}")


@pytest.mark.parametrize("model", reference.models(), ids=lambda m: m.__name__)
def test_every_field_has_a_description(model):
    assert (model.__doc__ or "").strip(), f"{model.__name__} has no docstring (it heads its table in {DOC.name})"
    missing = [name for name, field in model.model_fields.items() if not (field.description or "").strip()]
    assert not missing, f"{model.__name__}: fields without a description: {', '.join(missing)}"


def test_reference_lists_every_key():
    text = reference.markdown()
    for key in ("`name`", "`teacher.train.epochs`", "`distill.hidden.layer_map`", "`refine.train.epochs`",
                "`quantize.variants.<i>.calibration.samples`", "`sweep.grid`", "`bench.targets`"):
        assert f"| {key} |" in text, key
