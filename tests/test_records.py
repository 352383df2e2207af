"""The typed records (compress/records.py): report.json, manifest.json and stage.json of a real run read back
through them, their schema_version, and the JSON schemas in docs/schemas/ kept current."""

from __future__ import annotations

import pytest

from compress import records
from compress.layout import RunLayout

from .conftest import ROOT, read_json


@pytest.mark.parametrize("name", sorted(records.SCHEMAS))
def test_json_schemas_in_docs_are_current(name):
    path = ROOT / "docs" / "schemas" / f"{name}.schema.json"
    assert path.read_text(encoding="utf-8") == records.schema(name), \
        f"{path} is out of date: python -m compress.records docs/schemas"


def test_a_run_is_written_through_the_records(tiny_shipped):
    run_dir, bundle, _ = tiny_shipped
    where = RunLayout(run_dir)
    report = records.read_report(where.report_json)
    assert report.schema_version == records.SCHEMA_VERSION and report.task == "sequence-classification"
    assert report.variant("teacher").retention == 1.0 and report.variant("nothing") is None
    assert report.dump() == read_json(where.report_json)  # read and written back: the same JSON
    manifest = records.Manifest.model_validate(read_json(bundle / "manifest.json"))
    assert manifest.schema_version == records.SCHEMA_VERSION and manifest.variant == "student-int8"
    assert set(manifest.files) == {p.name for p in bundle.iterdir()} - {"manifest.json"}
    stage = records.read_stage(where.record("distill"))
    assert stage.status == "done" and stage.files["model/model.safetensors"].bytes > 0


def test_a_record_keeps_what_a_task_adds_and_refuses_what_it_lacks():
    v = records.Variant(name="x", role="student", format="onnx", precision="int8", parameters=1, size_bytes=2,
                        agreement_with_teacher=0.9)
    assert v.get("agreement_with_teacher") == 0.9 and v.dump()["agreement_with_teacher"] == 0.9
    assert "accuracy" not in v.dump()  # never measured: absent, not null
    with pytest.raises(ValueError, match="size_bytes"):
        records.Variant(name="x", role="student", format="onnx", precision="int8", parameters=1)
