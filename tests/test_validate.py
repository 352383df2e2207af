"""compress validate: several pipeline files, overrides applied to each, and the data read as compress run reads it,
without writing anything."""

import pytest

from compress.tasks import load_config

from .conftest import ROOT, invoke

TINY = ROOT / "pipelines" / "tiny.yaml"
ROWS = [("a good warm film", 1), ("a dull flat film", 0), ("great fun", 1), ("awful and boring", 0)] * 10


def copy(tmp_path, name, replace=("", "")):
    path = tmp_path / name
    path.write_text(TINY.read_text().replace(*replace))
    return path


def data_folder(tmp_path, header="sentence\tlabel", test_rows=ROWS):
    folder = tmp_path / "data"
    folder.mkdir()
    for split, rows in (("train", ROWS), ("test", test_rows)):
        (folder / f"{split}.tsv").write_text(header + "\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return folder


def test_several_files_each_get_their_lines_and_the_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = copy(tmp_path, "good.yaml")
    bad = copy(tmp_path, "bad.yaml", ("temperature: 4.0", "temperature: -1"))
    result = invoke("validate", good, bad, "bench.queries=10")
    assert result.exit_code == 2, result.output
    hash_ = load_config(good, ["bench.queries=10"]).hash()  # the override applied to it
    assert result.stdout.splitlines() == [f"{good}: ok (run 'tiny', config {hash_}; data checked)"]
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"error: {bad}: distill.temperature: must be > 0, got -1")
    assert errors[-1] == "validate: 1 of 2 files ok"
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "good.yaml"]  # nothing written


def test_an_override_reaches_every_file_and_the_data_check_names_each(tmp_path):
    folder = data_folder(tmp_path)
    a, b = copy(tmp_path, "a.yaml"), copy(tmp_path, "b.yaml")
    result = invoke("validate", a, f"data.source={folder}", b, "data.text_column=review")
    assert result.exit_code == 2
    for path in (a, b):
        assert (f"error: {path}: data.text_column: column 'review' not in split 'train' ({folder / 'train.tsv'}; "
                f"columns found: sentence, label)") in result.stderr.splitlines()
    assert "validate: 0 of 2 files ok" in result.stderr


def test_a_classifier_and_a_causal_lm_validate_together():
    result = invoke("validate", TINY, ROOT / "pipelines" / "tiny-lm.yaml")
    assert result.exit_code == 0, result.output
    *files, summary = result.stdout.splitlines()
    assert [line.split(": ok (")[0] for line in files] == [str(TINY), str(ROOT / "pipelines" / "tiny-lm.yaml")]
    assert summary == "validate: 2 of 2 files ok" and not result.stderr


def test_a_missing_file_or_no_file_is_one_line(tmp_path):
    missing = tmp_path / "nothere.yaml"
    result = invoke("validate", missing)
    assert result.exit_code == 2 and "Traceback" not in result.output
    line, = result.stderr.splitlines()
    assert line.startswith("error: ") and str(missing) in line
    result = invoke("validate", TINY, "nonsense")  # not a file, not a .yaml: an override, refused as run refuses it
    assert result.exit_code == 2 and result.stderr.startswith("error: override 'nonsense': expected key=value")
    result = invoke("validate", "distill.temperature=2")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: validate: no pipeline file among distill.temperature=2 (give a YAML "
                                     "file, then key=value overrides)")


def test_string_labels_outside_the_training_names_fail_validate(tmp_path):
    folder = data_folder(tmp_path, test_rows=[("fine", "positive"), ("odd", "neutral")])
    (folder / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{'positive' if y else 'negative'}\n"
                                                                   for t, y in ROWS))
    result = invoke("validate", TINY, f"data.source={folder}")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: data: 1 label(s) in split 'test' ({folder / 'test.tsv'}) are not one of the 2 label names of "
        "training split 'train' (negative, positive); first: row 2: 'neutral'"]


def test_data_warnings_name_the_file_when_there_are_several(tmp_path):
    folder = data_folder(tmp_path)  # the test split repeats the training sentences
    a = copy(tmp_path, "a.yaml")
    result = invoke("validate", a, TINY, f"data.source={folder}")
    assert result.exit_code == 0, result.output
    assert (f"warning: {a}: data: 40 of 40 evaluation sentences (100.0%) also appear in the training split 'train': "
            "accuracy on them is not held-out") in result.stderr.splitlines()


def test_a_hub_dataset_is_left_to_run(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise AssertionError("compress validate must not download")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    result = invoke("validate", TINY, "data.source=glue", "data.subset=sst2")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("data not read: hub dataset glue, which compress run downloads)")


@pytest.mark.parametrize("name", ["tiny.yaml", "tiny-lm.yaml"])
def test_one_file_keeps_the_lines_run_prints(name):
    result = invoke("validate", ROOT / "pipelines" / name, "data.generated_size=0")
    assert result.exit_code == 2
    assert all(line.startswith("error: data.generated_size:") for line in result.stderr.splitlines()), result.stderr
