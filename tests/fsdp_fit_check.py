"""``fit`` under FSDP on 2 CPU processes, for tests/test_fsdp.py: ``accelerate launch --config_file <fsdp config>
-m tests.fsdp_fit_check OUT``. A tiny GPT-2 is trained 6 steps once straight through and once stopped after the
checkpoint of step 4 (accelerator.save_state of the shards) and resumed (load_state); OUT/result.json (main
process) holds both runs' metrics and the largest difference between their gathered, whole weights."""

import json
import os
import sys
from pathlib import Path

import torch
from rich.console import Console
from transformers import GPT2Config, GPT2LMHeadModel

import tests.fsdp_on_cpu  # noqa: F401  (FSDP on CPU processes)
from compress.config import TrainConfig
from compress.data import Encoded
from compress.distill.train import fit, make_accelerator
from compress.tasks.causal_lm.objectives import lm_cross_entropy


def train(folder: Path, stop_at: int | None = None):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_layer=2, n_embd=16, n_head=2, n_positions=16))
    data = Encoded([[1 + (i * 7 + j) % 49 for j in range(8 + i % 5)] for i in range(64)], [0] * 64)
    cfg = TrainConfig(max_steps=6, batch_size=8, learning_rate=1e-2, precision="fp32", checkpoint_every=2, dropout=0.0)
    calls = [0]

    def loss_fn(m, batch):
        calls[0] += 1
        if calls[0] == stop_at:
            raise KeyboardInterrupt
        return lm_cross_entropy(m, batch)

    accelerator = make_accelerator("cpu", "fp32")
    return model, fit(model, data, 0, cfg, accelerator, 0, loss_fn, "t", Console(quiet=True), checkpoint_dir=folder)


def main(out: Path) -> None:
    straight, m1 = train(out / "straight")
    try:
        train(out / "stopped", stop_at=5)
    except KeyboardInterrupt:
        pass
    checkpoints = sorted(p.name for p in (out / "stopped").iterdir())
    resumed, m2 = train(out / "stopped")
    a, b = straight.state_dict(), resumed.state_dict()
    if os.environ.get("RANK", "0") == "0":
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        (out / "result.json").write_text(json.dumps({
            "straight": m1, "resumed": m2, "checkpoints": checkpoints, "max_weight_diff": diff,
            "keys": sorted(a) == sorted(GPT2LMHeadModel(straight.config).state_dict()),
            "architectures": type(straight).__name__}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
