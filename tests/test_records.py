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


def test_an_old_report_json_loads_without_the_rounds_fields():
    """A report.json written before latency rounds: the new fields take their defaults."""
    report = records.Report.model_validate({
        "name": "old", "created": "c", "config_hash": "h", "reference": "teacher",
        "variants": [{"name": "teacher", "role": "teacher", "format": "pytorch", "precision": "fp32", "parameters": 1,
                      "size_bytes": 1, "speedup": 1.0, "latency_ms": {"p50": 2.0},
                      "measurements": {"cpu@32": {"latency_ms": {"p50": 2.0}, "speedup": 1.0}}}]})
    v = report.variant("teacher")
    assert report.latency_rounds is None and v.sha256 is None
    assert (v.flags, v.speedup_flags, v.p50_rounds_ms, v.speedup_range) == ([], [], [], None)
    assert v.measurements["cpu@32"].flags == [] and v.measurements["cpu@32"].p50_range_ms is None
    assert "flags" not in v.dump()  # defaults are not written back


WHOLE = {"stage": "teacher", "status": "done", "inputs_hash": "abc", "started": "2025-01-01T00:00:00+00:00",
         "finished": "2025-01-01T00:01:00+00:00", "seconds": 60.0, "metrics": {}, "files": {}}


@pytest.mark.parametrize("broken", [
    "truncated", "no finished", "no seconds", "no inputs_hash", "empty inputs_hash", "not a time", "other stage",
    "status running", "negative seconds", "a list"])
def test_a_stage_counts_as_finished_only_with_a_whole_record(tmp_path, broken):
    import json

    from compress import pipeline
    from compress.tasks import load_config

    cfg = load_config(ROOT / "pipelines" / "tiny.yaml")
    stage = next(s for s in pipeline.stages(cfg) if s.NAME == "teacher")
    path = RunLayout(tmp_path).record("teacher")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(WHOLE))
    assert records.whole_stage(path, "teacher") is not None
    assert pipeline.finished(stage, cfg, tmp_path, "abc") and not pipeline.finished(stage, cfg, tmp_path, "other")
    record = dict(WHOLE)
    if broken == "truncated":
        path.write_text(json.dumps(WHOLE)[:70])
    else:
        edits = {"no finished": lambda r: r.pop("finished"), "no seconds": lambda r: r.pop("seconds"),
                 "no inputs_hash": lambda r: r.pop("inputs_hash"), "empty inputs_hash": lambda r: r.update(inputs_hash=""),
                 "not a time": lambda r: r.update(started="yesterday"), "other stage": lambda r: r.update(stage="student"),
                 "status running": lambda r: r.update(status="running"), "negative seconds": lambda r: r.update(seconds=-1),
                 "a list": lambda r: None}
        edits[broken](record)
        path.write_text(json.dumps([record] if broken == "a list" else record))
    assert records.whole_stage(path, "teacher") is None
    assert not pipeline.finished(stage, cfg, tmp_path, "abc")  # the stage runs again
