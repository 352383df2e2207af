"""Tasks are registered, not branched (compress/tasks/): the registry, a toy third task run through the real
CLI, and no module outside compress/tasks/ that asks which task it is in."""

from __future__ import annotations

import ast

import pytest
import yaml

from compress import tasks
from compress.errors import CompressError
from compress.tasks import load_config

from .conftest import ROOT, invoke, read_json


def test_the_registered_tasks_and_their_stages():
    assert tasks.names()[:2] == ["sequence-classification", "causal-lm"]
    classify, lm = tasks.get("sequence-classification"), tasks.get("causal-lm")
    assert [m.NAME for m in classify.stage_modules()] == ["teacher", "student", "distill", "refine", "baseline", "trim",
                                                          "export", "quantize", "mobile", "bench", "report", "ship"]
    assert [m.NAME for m in lm.stage_modules()] == ["teacher", "student", "distill", "baseline", "export", "quantize",
                                                    "score", "bench", "report", "ship"]
    for task in (classify, lm):
        for stage in task.stage_modules():  # every stage reads only stages that run before it
            before = [m.NAME for m in task.stage_modules()][: [m.NAME for m in task.stage_modules()].index(stage.NAME)]
            assert set(stage.DEPENDS) <= set(before), (task.name, stage.NAME)
        for hook in task.hooks:
            assert callable(task.hook(hook))
    assert tasks.get(None) is classify  # a report without a task key: the default task


def test_each_task_reads_its_own_config_sections():
    """The causal-LM stages no longer borrow the classifier's: its quantize is not re-hashed by optimize.*, which it
    never reads, and no stage of it reads refine, trim or mobile."""
    from compress.pipeline import inputs_hash

    lm = tasks.get("causal-lm")
    assert not {"refine", "vocab_trim", "mobile", "optimize"} & set(lm.config_sections())
    assert {"refine", "vocab_trim", "mobile", "optimize"} <= set(tasks.get("sequence-classification").config_sections())
    quantize = next(m for m in lm.stage_modules() if m.NAME == "quantize")
    upstream = {"export": "e", "distill": "d"}
    base = load_config(ROOT / "pipelines" / "tiny-lm.yaml")
    changed = load_config(ROOT / "pipelines" / "tiny-lm.yaml", ["optimize.first_token_only=false"])
    assert inputs_hash(quantize, base, upstream) == inputs_hash(quantize, changed, upstream)
    assert inputs_hash(quantize, base, upstream) != inputs_hash(
        quantize, load_config(ROOT / "pipelines" / "tiny-lm.yaml", ["quantize.accuracy_samples=32"]), upstream)


def test_an_unknown_task_lists_the_registered_ones(tmp_path):
    with pytest.raises(CompressError, match="task: 'translation' is not a registered task; registered: "
                                            "sequence-classification, causal-lm"):
        tasks.get("translation")
    result = invoke("validate", ROOT / "pipelines" / "tiny.yaml", "task=translation")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "task: 'translation' is not a registered task; registered: sequence-classification, causal-lm" \
        in result.stderr


TOY = {"name": "words", "task": "word-count", "seed": 0, "device": "cpu", "quantize": {"enabled": False},
       "ship": {"enabled": False}, "mobile": {"enabled": False},
       "data": {"source": "generated", "generated_size": 100, "max_length": 16},
       "teacher": {"architecture": {"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
                                    "num_attention_heads": 1, "intermediate_size": 8}, "num_labels": 2}}


def test_a_third_task_is_one_folder_registered_in_one_place(tmp_path, monkeypatch):
    monkeypatch.setitem(tasks.REGISTRY, "word-count", "tests.toytask")
    pipeline = tmp_path / "words.yaml"
    pipeline.write_text(yaml.safe_dump(TOY))
    refused = invoke("validate", pipeline, "quantize.enabled=true")
    assert refused.exit_code == 2 and "quantize.enabled: word-count quantizes nothing" in refused.stderr
    result = invoke("run", pipeline, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    run_dir = tmp_path / "runs" / "words"
    assert sorted(p.name for p in run_dir.iterdir() if (p / "stage.json").is_file()) == ["count", "report"]
    report = read_json(run_dir / "report.json")
    assert report["task"] == "word-count" and report["words"] == read_json(run_dir / "count" / "count.json")["words"] > 0
    assert f"word-count: {report['words']} words" in result.output
    again = invoke("run", pipeline, "--runs-dir", tmp_path / "runs")
    assert again.exit_code == 0 and "skip" in again.output and "count" in again.output


def _task_names_outside_tasks() -> list[str]:
    """Every place outside compress/tasks/ that compares something with a task's name, reads a config's or a
    report's task, or spells a task's name in code (docstrings and field descriptions aside)."""
    names = set(tasks.names())
    found = []
    for path in sorted((ROOT / "compress").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("compress/tasks/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        descriptions = {id(k.value) for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords
                        if k.arg == "description"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs | descriptions:
                if node.value in names and not (rel == "compress/config/schema.py"):
                    found.append(f"{rel}:{node.lineno} spells the task name {node.value!r}")
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "task" for s in sides):
                    found.append(f"{rel}:{node.lineno} compares a .task")
    return found


def test_no_module_outside_the_tasks_names_a_task():
    assert _task_names_outside_tasks() == []


def test_the_schema_names_only_the_default_task():
    from compress.config import PipelineConfig

    assert PipelineConfig.model_fields["task"].default == tasks.default()
