"""Killed runs: the real CLI is killed (SIGKILL, the whole process group) during teacher fine-tuning, during
distillation mid-epoch after a checkpoint, during export and during bench, and stopped with Ctrl-C once; each
next `compress run` keeps what was finished, resumes training from its checkpoint, and the last one writes a
valid report and a bundle that verifies. Checkpoints themselves are written so that a kill while saving one
leaves the previous one usable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ..conftest import FAST, ROOT, default_sigint, invoke, read_json

TINY = ROOT / "pipelines" / "tiny.yaml"
STAGES = ("teacher", "student", "distill", "refine", "baseline", "trim", "export", "quantize", "mobile", "bench", "report",
          "ship")


class Run:
    """`python -m compress run ...` in its own process group; stdout and stderr collected as they come."""

    def __init__(self, args: list[str]):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "compress", "run", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, start_new_session=True,
                                     preexec_fn=default_sigint)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream, sink):
        for line in stream:
            sink.append(line)

    @property
    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def wait_for(self, predicate, what: str, timeout: float = 240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.signal(signal.SIGKILL)
        pytest.fail(f"never saw {what} (exit {self.proc.returncode}):\n{self.output[-4000:]}")

    def signal(self, sig) -> int:
        try:
            os.killpg(self.proc.pid, sig)  # the run and its bench workers, as a crash or an OOM kill takes them
        except ProcessLookupError:
            pass
        return self.finish()

    def finish(self, timeout: float = 300) -> int:
        self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=10)
        return self.proc.returncode


def checkpoints(run_dir: Path, stage: str) -> list[int]:
    """Steps of the complete checkpoints of ``stage`` (a step folder with progress.json, written last)."""
    return sorted(int(p.parent.name.split("-")[1]) for p in run_dir.glob(f".checkpoints/{stage}-*/step-*/progress.json")
                  if not p.parent.name.endswith(".tmp"))  # one being saved when the signal came


def stamp(run_dir: Path, stage: str) -> tuple:
    record = run_dir / stage / "stage.json"
    return record.stat().st_mtime_ns, read_json(record)["inputs_hash"], read_json(record)["finished"]


@pytest.mark.slow
def test_killed_at_every_stage_the_next_run_finishes_keeps_and_resumes(tmp_path):
    runs, exports = tmp_path / "runs", tmp_path / "exports"
    run_dir = runs / "tiny"
    args = [str(TINY), "--runs-dir", str(runs), f"ship.dir={exports}", *FAST, "baselines.enabled=false",
            "bench.targets=[cpu]", "data.max_length=12",  # a few generated sentences are longer: truncated, counted
            "data.generated_size=1000",  # 2 epochs of 32 steps each for the teacher and for distillation
            "quantize.variants=[{name: student-int8, method: onnx_dynamic}]",  # one variant: a shorter bench
            "teacher.train.checkpoint_every=5", "distill.train.checkpoint_every=5"]

    # 1. SIGKILL during teacher fine-tuning, once it has a checkpoint
    run = Run(args)
    run.wait_for(lambda: checkpoints(run_dir, "teacher"), "a teacher checkpoint")
    assert run.signal(signal.SIGKILL) == -signal.SIGKILL
    assert not (run_dir / "teacher" / "stage.json").exists()
    killed_at = checkpoints(run_dir, "teacher")[-1]

    # 2. the next run resumes the teacher from that checkpoint; Ctrl-C during distillation after a checkpoint
    run = Run(args)
    run.wait_for(lambda: checkpoints(run_dir, "distill"), "a distill checkpoint")
    assert run.signal(signal.SIGINT) == 130, run.output
    assert f"fine-tune teacher: resuming from the checkpoint at step {killed_at}/" in run.output
    assert "Traceback" not in run.output
    assert run.err[-1].startswith("interrupted: finished stages and training checkpoints are kept; resume with: "
                                  "python -m compress run "), run.err
    assert read_json(run_dir / "teacher" / "stage.json")["metrics"]["train"]["resumed_from_step"] == killed_at
    kept = {s: stamp(run_dir, s) for s in ("teacher", "student")}
    assert not (run_dir / ".distill.tmp").exists() and checkpoints(run_dir, "distill")  # tmp gone, checkpoint kept
    assert not list(run_dir.glob(".checkpoints/teacher-*"))  # a finished stage's checkpoint is removed

    # 3. SIGKILL during distillation, mid-epoch, after a checkpoint newer than the one it resumed from
    resumed_at = checkpoints(run_dir, "distill")[-1]
    run = Run(args)
    run.wait_for(lambda: [s for s in checkpoints(run_dir, "distill") if s > resumed_at], "a newer distill checkpoint")
    run.signal(signal.SIGKILL)
    assert f"distill: resuming from the checkpoint at step {resumed_at}/" in run.output
    steps_per_epoch = -(-1000 // 32)
    killed_at = checkpoints(run_dir, "distill")[-1]
    assert killed_at % steps_per_epoch and not (run_dir / "distill" / "stage.json").exists()  # mid-epoch

    # 4. SIGKILL during export
    run = Run(args)
    run.wait_for(lambda: (run_dir / ".export.tmp").is_dir(), "the export stage")
    run.signal(signal.SIGKILL)
    assert f"distill: resuming from the checkpoint at step {killed_at}/" in run.output
    assert read_json(run_dir / "distill" / "stage.json")["metrics"]["train"]["resumed_from_step"] == killed_at
    assert not (run_dir / "export" / "stage.json").exists()
    kept |= {s: stamp(run_dir, s) for s in ("distill", "trim")}

    # 5. SIGKILL during bench, while it measures (a worker process has started)
    run = Run(args)
    run.wait_for(lambda: (run_dir / ".bench.tmp").is_dir(), "the bench stage")
    time.sleep(1.0)
    assert run.proc.poll() is None, run.output
    run.signal(signal.SIGKILL)
    assert not (run_dir / "bench" / "stage.json").exists() and not (run_dir / "report.json").exists()
    kept |= {s: stamp(run_dir, s) for s in ("export", "quantize", "mobile")}

    # 6. the last run finishes: every finished stage kept as it was, bench, report and ship done now
    run = Run(args)
    assert run.finish() == 0, run.output
    skipped = {line.split()[1] for line in run.out if line.startswith("skip ")}
    assert skipped == {"teacher", "student", "distill", "refine", "baseline", "trim", "export", "quantize", "mobile"}
    assert {s: stamp(run_dir, s) for s in kept} == kept  # same file, same inputs hash, same finish time
    for stage in STAGES:
        assert read_json(run_dir / stage / "stage.json")["status"] == "done"
    report = json.loads((run_dir / "report.json").read_text())
    assert [v["name"] for v in report["variants"]][:5] == ["teacher", "teacher-onnx", "student", "student-onnx",
                                                         "student-int8"]
    for v in report["variants"]:
        assert v["accuracy"] is not None and v["latency_ms"]["p50"] > 0
    assert report["data"]["max_length"] == 12 and report["data"]["train"]["truncated"] > 0  # counted in the report
    assert "truncated" in (run_dir / "report.md").read_text()
    rendered = invoke("report", run_dir, "--out", tmp_path / "again.html")  # report.json renders again as it is
    assert rendered.exit_code == 0, rendered.output
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith((".tmp", ".old"))]
    assert not list(run_dir.glob(".checkpoints/*"))
    verified = invoke("verify", exports / "tiny")
    assert verified.exit_code == 0, verified.output

    # 7. a finished stage's file damaged afterwards: refused, naming it, before anything is rerun or written
    weights = run_dir / "teacher" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    run = Run([*args, "distill.temperature=2"])
    assert run.finish() == 2, run.output
    assert run.err[0].startswith(f"error: {weights}: ") and "truncated or changed since" in run.err[0], run.err
    assert "; rerun it with: python -m compress run " in run.err[0] and run.err[0].rstrip().endswith(" --from teacher")
    assert read_json(run_dir / "distill" / "stage.json")["metrics"]["temperature"] == 4.0  # nothing was rerun


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_with_exit_143_and_the_next_run_resumes(tmp_path):
    """A scheduler's or `kill`'s SIGTERM: exit 143 (128 + 15), the one-line resume hint, no temporary folder left,
    the checkpoint kept and read by the next run."""
    runs = tmp_path / "runs"
    run_dir = runs / "tiny"
    args = [str(TINY), "--runs-dir", str(runs), f"ship.dir={tmp_path / 'exports'}", *FAST, "baselines.enabled=false",
            "data.generated_size=600", "teacher.train.checkpoint_every=5", "teacher.train.epochs=2",
            "distill.train.epochs=0.1", "quantize.enabled=false", "mobile.enabled=false", "ship.enabled=false",
            "bench.targets=[cpu]"]
    run = Run(args)
    run.wait_for(lambda: checkpoints(run_dir, "teacher"), "a teacher checkpoint")
    assert run.signal(signal.SIGTERM) == 143, run.output
    assert "Traceback" not in run.output
    assert run.err[-1].startswith("interrupted: finished stages and training checkpoints are kept; resume with: "), run.err
    assert not (run_dir / ".teacher.tmp").exists() and not (run_dir / "teacher" / "stage.json").exists()
    stopped_at = checkpoints(run_dir, "teacher")[-1]
    run = Run(args)
    run.wait_for(lambda: "resuming from the checkpoint" in run.output, "the teacher resuming")
    run.signal(signal.SIGKILL)
    assert f"fine-tune teacher: resuming from the checkpoint at step {stopped_at}/" in run.output


# ----------------------------------------------------------------------------- checkpoints, without the CLI


def _fit(checkpoint_dir, loss_fn=None, max_steps=6):
    import torch
    import torch.nn.functional as F
    from rich.console import Console
    from transformers import BertConfig, BertForSequenceClassification

    from compress.config import TrainConfig
    from compress.data import Encoded
    from compress.distill.train import fit, make_accelerator

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=16, num_labels=2))
    data = Encoded([[1, 5 + i % 20, 2] for i in range(64)], [i % 2 for i in range(64)])

    def ce(model, batch):
        loss = F.cross_entropy(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                               batch["labels"])
        return loss, {}

    cfg = TrainConfig(max_steps=max_steps, batch_size=8, learning_rate=1e-3, precision="fp32", checkpoint_every=2)
    console = Console(record=True)
    metrics = fit(model, data, 0, cfg, make_accelerator("cpu", "fp32"), 0, loss_fn or ce, "t", console,
                  checkpoint_dir=checkpoint_dir)
    return metrics, console.export_text()


def test_a_checkpoint_half_written_when_killed_is_never_read(tmp_path):
    from compress.distill.train import latest_checkpoint

    def dies_at_step_5(model, batch, calls=[0]):
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        import torch.nn.functional as F

        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.cross_entropy(out, batch["labels"]), {}

    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, dies_at_step_5)
    assert [p.name for p in tmp_path.iterdir()] == ["step-000000004"]  # the older one deleted once this one was whole
    # a kill while saving step 6: its folder exists but has no progress.json (written last), so it does not count
    half = tmp_path / "step-000000006.tmp"
    (half / "state").mkdir(parents=True)
    (half / "state" / "model.safetensors").write_bytes(b"\x00" * 10)
    (tmp_path / "step-000000008").mkdir()  # renamed but empty: cannot happen, and is not read either
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000000004"
    metrics, out = _fit(tmp_path)
    assert metrics["resumed_from_step"] == 4 and metrics["steps"] == 6
    assert "t: resuming from the checkpoint at step 4/6 (step-000000004)" in out


def test_a_damaged_checkpoint_is_named_with_the_fix(tmp_path):
    from compress.errors import CompressError

    _fit(tmp_path, max_steps=6)  # finished: its last checkpoint (step 4) is left, as a kill after it would leave it
    (state,) = [p for p in tmp_path.glob("step-*/state/model.safetensors")]
    state.write_bytes(state.read_bytes()[:50])
    with pytest.raises(CompressError) as info:
        _fit(tmp_path, max_steps=8)
    line = info.value.problems[0]
    assert line.startswith(f"{state.parents[1]}: the training checkpoint cannot be read (")
    assert line.endswith("delete that folder and run again to start t over")


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    from compress.pipeline import _exclusive

    run_dir = tmp_path / "runs" / "tiny"
    with _exclusive(run_dir, True):  # a run in progress holds the folder
        result = invoke("run", TINY, "--runs-dir", tmp_path / "runs", f"ship.dir={tmp_path / 'exports'}")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (f"error: {run_dir}: another compress run (pid {os.getpid()}) is using this run "
                                     "folder; wait for it to finish or stop it, then run again")
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing of the refused run was written
