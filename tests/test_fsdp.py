"""FSDP through ``accelerate launch --config_file pipelines/accelerate/fsdp.yaml``: the shipped config says what
docs/causal-lm.md promises, and the causal-LM pipeline sharded on 2 CPU processes (gloo) distils the same student
as 1 process, saves it whole, and resumes training from sharded checkpoints.

Accelerate 1.16 runs FSDP on GPUs only (on CPU it silently falls back to data parallelism); tests/fsdp_on_cpu.py
makes the one promotion to FSDP that it skips on CPU, so the sharding itself is PyTorch's FSDP2 over gloo."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT, read_json

SHIPPED = ROOT / "pipelines" / "accelerate" / "fsdp.yaml"
# What the CPU test changes in the shipped config: 2 processes, fp32 (bf16 autocast is for GPUs).
ON_CPU = {"num_processes": 2, "mixed_precision": "no"}
COMMON = ["distill.train.dropout=0", "distill.train.checkpoint_every=0", "teacher.train.max_steps=10",
          "data.generated_size=600", "baselines.enabled=false", "quantize.enabled=false", "ship.enabled=false",
          "bench.targets=[cpu]", "bench.queries=10", "bench.warmup=1", "bench.min_seconds=0",
          "bench.generation_prompts=1", "export.greedy_prompts=1", "export.parity_samples=1"]


def test_the_shipped_config_shards_every_block_and_saves_whole_models():
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(SHIPPED))
    assert cfg.distributed_type.value == "FSDP" and cfg.mixed_precision == "bf16" and not cfg.use_cpu
    fsdp = cfg.fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_reshard_after_forward"] is True  # FULL_SHARD
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert "accelerate launch --config_file pipelines/accelerate/fsdp.yaml -m compress run" in SHIPPED.read_text()
    assert "pipelines/accelerate/fsdp.yaml" in (ROOT / "docs" / "causal-lm.md").read_text()


def _cpu_config(tmp_path):
    cfg = {**yaml.safe_load(SHIPPED.read_text()), **ON_CPU}
    path = tmp_path / "fsdp-cpu.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _launch(tmp_path, port: int, *args: str):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(_cpu_config(tmp_path)),
           "--main_process_port", str(port), "-m", *args]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_fit_under_fsdp_resumes_from_sharded_checkpoints_and_gathers_whole_weights(tmp_path):
    _launch(tmp_path, 29521, "tests.fsdp_fit_check", str(tmp_path))
    result = read_json(tmp_path / "result.json")
    straight, resumed = result["straight"], result["resumed"]
    assert straight["distributed_type"] == resumed["distributed_type"] == "FSDP"
    assert straight["processes"] == 2 and straight["steps"] == resumed["steps"] == 6
    assert result["checkpoints"] == ["step-000000004"] and resumed["resumed_from_step"] == 4
    assert resumed["loss_curve"][-2:] == straight["loss_curve"][-2:]
    assert result["max_weight_diff"] < 1e-6  # the gathered weights of the resumed run are those of the straight one
    assert result["keys"] and result["architectures"] == "GPT2LMHeadModel"  # whole, and no FSDP class left


@pytest.mark.slow
def test_tiny_lm_distilled_under_fsdp_matches_one_process(tmp_path):
    pipeline = str(ROOT / "pipelines" / "tiny-lm.yaml")
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "compress", "run", pipeline, "--runs-dir", str(one), *COMMON],
                   check=True, cwd=ROOT, capture_output=True)
    for stage in ("teacher", "student"):  # the same teacher and student: only distillation and after run sharded
        shutil.copytree(one / "tiny-lm" / stage, two / "tiny-lm" / stage)
    proc = _launch(tmp_path, 29522, "tests.fsdp_on_cpu", "run", pipeline, "--runs-dir", str(two), *COMMON)
    assert "skip teacher" in proc.stdout and "shards on GPUs only" not in proc.stdout
    single = read_json(one / "tiny-lm" / "distill" / "stage.json")["metrics"]["train"]
    double = read_json(two / "tiny-lm" / "distill" / "stage.json")["metrics"]["train"]
    assert (single["processes"], single["distributed_type"]) == (1, "NO")
    assert (double["processes"], double["distributed_type"]) == (2, "FSDP")
    assert single["steps"] == double["steps"] and len(single["loss_curve"]) == len(double["loss_curve"]) > 50
    diffs = [abs(a[1] - b[1]) for a, b in zip(single["loss_curve"], double["loss_curve"])]
    assert max(diffs[:2]) < 1e-4, diffs[:2]
    assert sum(diffs) / len(diffs) < 0.005 and max(diffs) < 0.05, diffs
    # the student was saved whole by the main process: export, parity and bench read it like any other
    ppl = {r: {v["name"]: v["perplexity"] for v in read_json(r / "tiny-lm" / "report.json")["variants"]} for r in (one, two)}
    assert abs(ppl[one]["student"] - ppl[two]["student"]) / ppl[one]["student"] < 0.01, ppl
    assert ppl[two]["student-onnx"] == pytest.approx(ppl[two]["student"], rel=1e-4)
