"""Resource limits: a run that would not fit in memory is warned about before anything trains, with the
estimate in GiB against the memory available; Ctrl-C then stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from rich.console import Console

from compress.preflight import GiB, available_memory, check_memory, training_estimates
from compress.tasks import load_config

from ..conftest import ROOT, default_sigint

TINY = ROOT / "pipelines" / "tiny.yaml"
ABSURD = ["data.max_length=4096", "teacher.train.batch_size=2000", "distill.train.batch_size=2000"]


def test_estimate_grows_with_batch_and_length():
    small = training_estimates(load_config(TINY), 2000)
    big = training_estimates(load_config(TINY, ABSURD), 2000)
    assert [e.what for e in small] == ["fine-tuning the teacher", "distillation"]
    assert all(b.total > 1000 * s.total for s, b in zip(small, big))
    assert big[0].batch == 2000 and big[0].tokens == 4096
    assert big[0].total > 1000 * GiB  # 4 layers x 4096^2 attention scores x 2 heads x 2000 sentences
    assert small[0].total < GiB
    capped = training_estimates(load_config(TINY, ["teacher.train.batch_size=100000"]), 2000)
    assert capped[0].batch == 2000  # a batch larger than the split is the split


def test_memory_warning_has_the_estimate_and_what_is_available():
    console = Console(record=True, width=100)
    out = check_memory(load_config(TINY, ABSURD), 2000, console, "cpu")
    text = console.export_text()
    assert out["estimate_bytes"] > out["available_bytes"] > 0 and out["device"] == "RAM"
    assert text.count("\n") == 1, text  # one line, however narrow the console
    assert text.startswith("warning memory: fine-tuning the teacher needs about ")
    assert "GiB at batch 2000 x 4096 tokens" in text and "GiB of RAM is available" in text
    quiet = Console(record=True)
    check_memory(load_config(TINY), 2000, quiet, "cpu")
    assert quiet.export_text() == ""


def test_available_memory_without_psutil_reads_proc_meminfo(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    free, where = available_memory("cpu")
    if os.path.exists("/proc/meminfo"):
        assert where == "RAM" and free > 0


def test_the_cli_warns_before_training_and_ctrl_c_stops_cleanly(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "compress", "run", str(TINY), "--runs-dir", str(tmp_path / "runs"),
           f"ship.dir={tmp_path / 'exports'}", *ABSURD]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                            start_new_session=True, preexec_fn=default_sigint)
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("warning memory:"):
            break
    assert seen and seen[-1].startswith("warning memory: fine-tuning the teacher needs about"), "".join(seen)
    assert "GiB at batch 2000 x 4096 tokens" in seen[-1] and "GiB of RAM is available" in seen[-1]
    assert not any("fine-tune teacher" in line or "teacher ─" in line for line in seen[:-1])  # before training starts
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("interrupted: finished stages and training checkpoints are kept; resume with: "
                                "python -m compress run "), lines
    assert "teacher.train.batch_size=2000" in lines[-1]
    run_dir = tmp_path / "runs" / "tiny"  # interrupted right after the preflight: maybe before the run folder exists
    assert not run_dir.exists() or not any(p.name.endswith(".tmp") for p in run_dir.iterdir())
