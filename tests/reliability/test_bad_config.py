"""Bad configuration: every mistake is one line naming the key or file, exit code 2, no traceback, and
nothing written under runs/ or exports/."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import ROOT, invoke

TINY = (ROOT / "pipelines" / "tiny.yaml").read_text()


def _tiny(old: str, new: str) -> str:
    assert old in TINY, old
    return TINY.replace(old, new, 1)


# (id, pipeline text or None for a missing file, overrides, what the one error line must contain)
BAD = [
    # syntax: line and column
    ("syntax-unclosed-bracket", "name: x\ndata: [unclosed\n", [], ":3:1: invalid YAML"),
    ("syntax-bad-indent", _tiny("  max_length: 32", " max_length: 32"), [], "invalid YAML"),
    ("syntax-tab-indent", _tiny("  max_length: 32", "\tmax_length: 32"), [], ":13:1: invalid YAML"),
    ("syntax-unclosed-quote", _tiny("name: tiny", 'name: "tiny'), [], "invalid YAML"),
    ("syntax-nul-byte", "name: \x00\n", [], "invalid YAML: unacceptable character"),
    ("duplicate-key", _tiny("seed: 0", "seed: 0\nseed: 1"), [], ":8: seed: duplicate key (first set on line 7)"),
    # unknown keys, with the closest valid key
    ("unknown-top-key", _tiny("seed: 0", "sed: 0"), [], "sed: unknown key; did you mean 'seed'?"),
    ("unknown-nested-key", _tiny("  alpha: 0.2", "  alpah: 0.2"), [], "distill.alpah: unknown key; did you mean 'alpha'?"),
    ("unknown-override-key", TINY, ["distill.temperture=2"], "distill.temperture: unknown key; did you mean 'temperature'?"),
    ("unknown-deep-key", TINY, ["distill.train.batchsize=8"], "distill.train.batchsize: unknown key; did you mean 'batch_size'?"),
    # wrong types
    ("type-str-for-int", _tiny("  queries: 20", "  queries: lots"), [], "bench.queries: input should be a valid integer"),
    ("type-list-for-float", TINY, ["distill.temperature=[1,2]"], "distill.temperature: input should be a valid number"),
    ("type-mapping-for-section", TINY, ["data=1"], "data: input should be a valid dictionary"),
    ("type-bool-for-list", TINY, ["student.layers=true"], "student.layers: input should be a valid list"),
    ("type-bad-literal", TINY, ["distill.divergence=kl"], "distill.divergence: must be one of"),
    ("type-date-for-name", _tiny("name: tiny", "name: 2020-01-01"), [], "name: input should be a valid string"),
    # out of range
    ("range-negative-temperature", TINY, ["distill.temperature=-1"], "distill.temperature: must be > 0, got -1"),
    ("range-alpha-above-one", TINY, ["distill.alpha=1.5"], "distill.alpha: must be <= 1, got 1.5"),
    ("range-zero-batch", TINY, ["distill.train.batch_size=0"], "distill.train.batch_size: must be > 0, got 0"),
    ("range-inf", TINY, ["teacher.train.epochs=.inf"], "teacher.train.epochs: input should be a finite number"),
    ("range-nan", TINY, ["distill.temperature=.nan"], "distill.temperature: input should be a finite number"),
    ("range-negative-seed", TINY, ["seed=-1"], "seed: must be >= 0, got -1"),
    ("range-max-length", TINY, ["data.max_length=100000"], "data.max_length: must be <= 4096"),
    ("range-positions", TINY, ["teacher.architecture.max_position_embeddings=16"],
     "data.max_length: 32 tokens, but teacher.architecture.max_position_embeddings is 16"),
    ("range-duplicate-layers", TINY, ["student.layers=[1,1]"], "student.layers: must be distinct indices >= 0"),
    # missing files and folders
    ("missing-pipeline-file", None, [], "file not found"),
    ("missing-data-folder", TINY, ["data.source=./no/such/folder"], "data.source: folder not found: ./no/such/folder"),
    ("missing-teacher-folder", TINY, ["teacher.architecture=null", "teacher.model=./no/such/model"],
     "teacher.model: folder not found: ./no/such/model"),
    ("missing-package", TINY, ["teacher.architecture=null", "teacher.model=package:no_such_pkg_xyz"],
     "teacher.model: Python package 'no_such_pkg_xyz' is not installed"),
    ("missing-student-folder", TINY, ["student.method=pretrained", "student.layers=null", "student.model=./no/student"],
     "student.model: folder not found: ./no/student"),
    ("missing-required-keys", "name: x\n", [], "data: required key is missing"),
    # empty files, lists and scalars
    ("empty-file", "", [], "file is empty"),
    ("only-comments", "# nothing here\n", [], "file is empty"),
    ("top-level-list", "- a\n- b\n", [], "top level must be a mapping of keys, got list"),
    ("top-level-scalar", "42\n", [], "top level must be a mapping of keys, got int"),
    ("top-level-string", "hello\n", [], "top level must be a mapping of keys, got str"),
    ("not-utf8", b"name: \xff\xfe tiny\n", [], "not UTF-8 text"),
    # YAML tags: safe_load only
    ("tag-python-object", "name: !!python/object/apply:os.system ['touch pwned']\n", [], "YAML tags such as !!python/object are refused"),
    ("tag-python-name", "name: !!python/name:os.system\n", [], "are refused"),
    ("tag-custom", "name: !foo bar\n", [], "are refused"),
    # structures that crash naive loaders
    ("deeply-nested", "a: " + "[" * 3000 + "]" * 3000 + "\n", [], "nested too deeply"),
    ("self-referencing-anchor", _tiny("name: tiny", "name: &a [*a]"), [], "name: input should be a valid string"),
    ("unhashable-key", "? [a, b]\n: c\n", [], "found unhashable key"),
    # overrides
    ("override-no-equals", TINY, ["nonsense"], "override 'nonsense': expected key=value"),
    ("override-through-scalar", TINY, ["data.source.x=1"], "override data.source.x: data.source is not a mapping"),
    ("override-list-index", TINY, ["quantize.variants.9.name=x"], "quantize.variants is not a mapping, nor a list with an item 9"),
    # impossible combinations
    ("combination-ship-without-quantize", TINY, ["quantize.enabled=false"], "ship.variant: student-int8 needs quantize.enabled: true"),
    ("combination-two-teachers", TINY, ["teacher.model=bert-base-uncased"], "teacher: set exactly one of teacher.model"),
]


@pytest.mark.parametrize("text, overrides, expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, text, overrides, expected):
    path = tmp_path / "p.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text, encoding="utf-8")
    runs, exports = tmp_path / "runs", tmp_path / "exports"
    for command in ("validate", "run"):
        extra = ["--runs-dir", runs] if command == "run" else []
        result = invoke(command, path, *overrides, f"ship.dir={exports}", *extra)
        assert result.exit_code == 2, (command, result.output, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert lines and all(line.startswith("error: ") for line in lines), lines
        assert any(expected in line for line in lines), lines
        assert "Traceback" not in result.output + result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not runs.exists() and not exports.exists()
    assert not (Path.cwd() / "pwned").exists()


def test_every_problem_at_once(tmp_path):
    """Three unrelated mistakes: three lines, in one go."""
    text = _tiny("temperature: 4.0", "temperature: -1").replace("  alpha: 0.2", "  alpah: 0.2")
    path = tmp_path / "p.yaml"
    path.write_text(text.replace("  queries: 20", "  queries: lots"))
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 3


def test_the_table_covers_every_kind_of_mistake():
    kinds = {b[0].split("-")[0] for b in BAD}
    assert {"syntax", "unknown", "type", "range", "missing", "empty", "top", "tag", "not"} <= kinds
