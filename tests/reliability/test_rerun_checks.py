"""A rerun checks what it skips: before a finished stage is skipped, every file its stage.json recorded (in its
folder, and what it wrote outside it: the report's files, the bundle) is hashed again. A file changed, truncated,
deleted or added since stops the run before it writes anything: one line naming the file and the
``compress run ... --from STAGE`` command that reruns its stage, exit 2, no traceback. An added file counts:
stages read whole folders (transformers loads any weights, adapter or tokenizer file a model folder holds; the
ship stage bundles the tokenizer files it finds in the export folder)."""

from __future__ import annotations

import hashlib
import shlex
import shutil
from pathlib import Path

import pytest

from compress import records, stagefiles

from ..conftest import ROOT, invoke

TINY = ROOT / "pipelines" / "tiny.yaml"
STAGES = ["teacher", "student", "distill", "refine", "baseline", "trim", "export", "quantize", "mobile", "bench",
          "report", "ship"]


def copy_whole_run(tiny_shipped, tmp_path) -> tuple[Path, list[str]]:
    """A copy of the shared tiny run's whole folder (the bundle stays where the shared run shipped it: the same
    config, so every stage is finished in the copy); returns (runs dir, overrides)."""
    run_dir, _, overrides = tiny_shipped
    shutil.copytree(run_dir, tmp_path / "runs" / "tiny", symlinks=True)
    return tmp_path / "runs", overrides


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file under the roots (the run folder's lock aside): what a refused run must leave alone."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for root in roots for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def rerun(runs: Path, overrides: list[str], *extra: str):
    return invoke("run", TINY, "--runs-dir", runs, *overrides, *extra)


def errors(result) -> list[str]:
    return [line for line in (result.stderr or "").splitlines() if line.strip()]


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


# (file in the run folder, how it is damaged, the stage that wrote it, what the line says)
CASES = {
    "changed": ("export/student/model.onnx", flip, "export", "sha256 differs from what the export stage wrote"),
    "changed-outside-its-folder": ("report.json", flip, "report", "sha256 differs from what the report stage wrote"),
    "truncated": ("mobile/model.ort", truncate, "mobile", "bytes, but the mobile stage wrote"),
    "deleted": ("quantize/student-int8/model.onnx", Path.unlink, "quantize", "missing (the quantize stage wrote it)"),
    "added-to-a-model-folder": ("student/model/adapter_config.json", lambda p: p.write_text("{}"), "student",
                                "not written by the student stage"),
    "added-tokenizer-file": ("export/student/vocab.txt", lambda p: p.write_text("[PAD]\n"), "export",
                             "not written by the export stage"),
}


def test_a_clean_rerun_checks_and_skips_every_stage(tiny_shipped, tmp_path):
    runs, overrides = copy_whole_run(tiny_shipped, tmp_path)
    stage_folders = [runs / "tiny" / stage for stage in STAGES]
    before = snapshot(*stage_folders)
    result = rerun(runs, overrides)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    skipped = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("skip ")]
    assert skipped == STAGES
    assert "inputs and files unchanged" in result.stdout
    assert snapshot(*stage_folders) == before


def test_every_stage_records_the_files_it_wrote(tiny_shipped):
    run_dir, bundle, _ = tiny_shipped
    for stage in STAGES:
        record = records.read_stage(run_dir / stage / "stage.json")
        assert {"files", "outputs"} <= record.model_fields_set, stage
        assert record.files == stagefiles.folder_digests(run_dir / stage), stage
    assert set(records.read_stage(run_dir / "report" / "stage.json").outputs) == {"report.json", "report.md",
                                                                                 "report.html"}
    shipped = records.read_stage(run_dir / "ship" / "stage.json").outputs
    assert set(shipped) == {f"{bundle.as_posix()}/{p.name}" for p in bundle.iterdir()}  # the manifest too


@pytest.mark.parametrize("kind", list(CASES))
def test_a_damaged_finished_stage_is_named_with_the_command_that_reruns_it(tiny_shipped, tmp_path, kind):
    rel, damage, stage, said = CASES[kind]
    runs, overrides = copy_whole_run(tiny_shipped, tmp_path)
    path = runs / "tiny" / rel
    damage(path)
    before = snapshot(runs / "tiny")
    result = rerun(runs, overrides)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + (result.stderr or "")
    lines = errors(result)
    assert len(lines) == 1, lines
    command = "compress run " + shlex.join([str(TINY), "--runs-dir", str(runs), *overrides, "--from", stage])
    assert lines[0].startswith(f"error: {path}: ") and said in lines[0], lines
    assert lines[0].endswith(f"; rerun it with: {command}"), lines
    assert "skip " not in result.stdout and "done " not in result.stdout  # refused before any stage is reported
    assert snapshot(runs / "tiny") == before  # nothing written: no stage, no config.yaml, plan.json or env.json


def test_the_named_command_reruns_that_stage_and_the_next_rerun_is_clean(tiny_shipped, tmp_path):
    runs, overrides = copy_whole_run(tiny_shipped, tmp_path)
    overrides = [*overrides, f"ship.dir={tmp_path / 'exports'}"]  # this test reships: not into the shared bundle
    report = runs / "tiny" / "report.json"
    flip(report)
    result = rerun(runs, overrides)
    assert result.exit_code == 2, result.output
    command = errors(result)[0].split("; rerun it with: ", 1)[1]
    assert command.endswith("--from report")
    result = invoke(*shlex.split(command)[1:])  # the command as printed, without the program name
    assert result.exit_code == 0, result.output + (result.stderr or "")
    done = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("done ")]
    assert done == ["report", "ship"]
    again = rerun(runs, overrides)
    assert again.exit_code == 0 and "done " not in again.stdout, again.output


def test_a_changed_or_added_bundle_file_is_named_with_the_ship_command(tiny_shipped, tmp_path):
    runs, overrides = copy_whole_run(tiny_shipped, tmp_path)
    overrides = [*overrides, f"ship.dir={tmp_path / 'exports'}"]
    shipped = rerun(runs, overrides)  # a bundle of this copy's own (ship.dir changed: only ship runs)
    assert shipped.exit_code == 0, shipped.output
    assert [line.split()[1] for line in shipped.stdout.splitlines() if line.startswith("done ")] == ["ship"]
    bundle = tmp_path / "exports" / "tiny"
    original = (bundle / "model.onnx").read_bytes()
    flip(bundle / "model.onnx")
    before = snapshot(runs / "tiny", bundle)
    result = rerun(runs, overrides)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert errors(result) == [f"error: {bundle / 'model.onnx'}: sha256 differs from what the ship stage wrote "
                              f"(changed since); rerun it with: compress run "
                              + shlex.join([str(TINY), "--runs-dir", str(runs), *overrides, "--from", "ship"])]
    assert snapshot(runs / "tiny", bundle) == before
    (bundle / "model.onnx").write_bytes(original)
    (bundle / "notes.txt").write_text("a stray file")  # compress verify refuses files the manifest does not list
    result = rerun(runs, overrides)
    assert result.exit_code == 2
    assert errors(result)[0].startswith(f"error: {bundle / 'notes.txt'}: not written by the ship stage"), errors(result)


def test_compress_report_records_what_it_renders_again(tiny_shipped, tmp_path, monkeypatch):
    """``compress report RUN`` rewrites report.md and report.html on purpose (after an upgrade, say): the report
    stage's record follows, and the next run skips every stage."""
    from compress.reports import html as html_report

    runs, overrides = copy_whole_run(tiny_shipped, tmp_path)
    html = runs / "tiny" / "report.html"
    render = html_report.render_run
    monkeypatch.setattr(html_report, "render_run", lambda report: render(report) + "<!-- a newer compress -->")
    rendered = invoke("report", runs / "tiny")
    assert html.read_text().endswith("<!-- a newer compress -->")
    assert rendered.exit_code == 0, rendered.output
    recorded = records.read_stage(runs / "tiny" / "report" / "stage.json").outputs["report.html"]
    assert recorded.sha256 == hashlib.sha256(html.read_bytes()).hexdigest()
    result = rerun(runs, overrides)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    assert "done " not in result.stdout


def test_from_names_a_stage_of_the_pipeline_or_is_refused(tiny_shipped, tmp_path):
    runs, overrides = copy_whole_run(tiny_shipped, tmp_path)
    before = snapshot(runs / "tiny")
    result = rerun(runs, overrides, "--from", "exprot")
    assert result.exit_code == 2
    assert errors(result) == ["error: --from: 'exprot' is not a stage of a sequence-classification pipeline; its "
                              "stages, in order: " + ", ".join(STAGES)]
    assert snapshot(runs / "tiny") == before


# ----------------------------------------------------------------------------- the check itself, on small folders


def _record(folder: Path, outputs: list[Path], run_dir: Path) -> records.StageRecord:
    record = records.StageRecord(stage="s", status="done", inputs_hash="h", started="2025-01-01T00:00:00",
                                 finished="2025-01-01T00:00:01", seconds=1)
    record.files = stagefiles.folder_digests(folder)
    record.outputs = stagefiles.output_digests(outputs, run_dir)
    return record


def test_problems_names_each_changed_missing_and_added_file(tmp_path):
    run_dir = tmp_path / "run"
    folder, bundle = run_dir / "s", tmp_path / "bundle"
    for root, names in ((folder, ["a.bin", "sub/b.txt"]), (bundle, ["m.onnx"])):
        for name in names:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(name.encode() * 10)
    (run_dir / "report.json").write_text("{}")
    outputs = [run_dir / "report.json", bundle]
    record = _record(folder, outputs, run_dir)
    assert set(record.outputs) == {"report.json", f"{bundle.as_posix()}/m.onnx"}
    assert stagefiles.problems(record, folder, outputs, run_dir) == []
    flip(folder / "a.bin")
    (folder / "sub" / "b.txt").unlink()
    (folder / "sub" / "c.txt").write_text("new")
    (run_dir / "report.json").write_text("{} ")
    (bundle / "m.onnx").unlink()
    found = {str(p.relative_to(tmp_path)): what.split(" (")[0] for p, what in
             stagefiles.problems(record, folder, outputs, run_dir)}
    assert found == {"run/s/a.bin": "sha256 differs from what the s stage wrote",
                     "run/s/sub/b.txt": "missing",
                     "run/s/sub/c.txt": "not written by the s stage",
                     "run/report.json": "3 bytes, but the s stage wrote 2",
                     "bundle/m.onnx": "missing"}


def test_a_record_from_before_the_lists_is_not_checked_against_them(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"x")
    old = records.StageRecord.model_validate({"stage": "s", "status": "done", "inputs_hash": "h",
                                              "started": "2025-01-01T00:00:00", "finished": "2025-01-01T00:00:01",
                                              "seconds": 1})
    assert stagefiles.problems(old, folder, [tmp_path / "report.json"], tmp_path) == []
