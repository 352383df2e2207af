from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compress.cli import app

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# Fast settings for the tiny pipeline: the loop is the same, the figures are not the point (two latency rounds,
# the fewest that show a spread).
FAST = ["bench.warmup=1", "bench.queries=10", "bench.min_seconds=0", "bench.rounds=2"]


def default_sigint() -> None:
    """preexec_fn for a child that must see Ctrl-C: a shell without job control starts background commands
    (``pytest &``) with SIGINT ignored, and an ignored signal stays ignored across exec; Python then installs
    no KeyboardInterrupt handler and the child would run on through the test's SIGINT."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def invoke(*args: str):
    """Run the real CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def run_tiny(tmp_path):
    """Run pipelines/tiny.yaml into tmp_path with extra overrides; returns (result, run_dir)."""

    def _run(*overrides: str):
        result = invoke("run", ROOT / "pipelines" / "tiny.yaml", "--runs-dir", tmp_path / "runs",
                        f"ship.dir={tmp_path / 'exports'}", *FAST, *overrides)
        return result, tmp_path / "runs" / "tiny"

    return _run


# A shorter tiny run for tests that only need a finished run and its bundle: fewer steps, no baselines; every
# bench target (gpu is skipped, with the reason, where there is no CUDA).
SHIPPED = [*FAST, "baselines.enabled=false", "teacher.train.epochs=1", "distill.train.epochs=1", "data.generated_size=200",
           "bench.targets=[cpu,mobile,gpu]", "bench.mobile_sequence_lengths=[16,32]"]


@pytest.fixture(scope="session")
def tiny_shipped(tmp_path_factory):
    """One run of pipelines/tiny.yaml (SHIPPED settings) shared by every test that asks for it; returns
    (run_dir, bundle_dir, overrides). Read-only: copy the bundle before changing anything in it."""
    base = tmp_path_factory.mktemp("shipped")
    overrides = [f"ship.dir={base / 'exports'}", *SHIPPED]
    result = invoke("run", ROOT / "pipelines" / "tiny.yaml", "--runs-dir", base / "runs", *overrides)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return base / "runs" / "tiny", base / "exports" / "tiny", overrides


def copy_run(tiny_shipped, target):
    """A copy of the shared run's report.json (and its reports) in ``target``: a run folder to edit."""
    run_dir, _, _ = tiny_shipped
    target.mkdir(parents=True)
    for name in ("report.json", "report.md", "report.html"):
        shutil.copyfile(run_dir / name, target / name)
    return target


def read_json(path: Path):
    return json.loads(Path(path).read_text())


TINY_BERT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "vocab_size": 120, "max_position_embeddings": 64, "num_labels": 2}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random 2-layer BERT classifier saved as safetensors, and its optimum export (plain ONNX ops)."""
    import torch
    from optimum.exporters.onnx import main_export
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("tinybert")
    BertForSequenceClassification(BertConfig(**TINY_BERT)).eval().save_pretrained(base / "model")
    main_export(str(base / "model"), output=base / "onnx", task="text-classification", do_validation=False, device="cpu")
    return base
