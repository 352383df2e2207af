"""The training loop: resume mid-epoch from a checkpoint, gradient accumulation, best epoch kept."""

import random

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from transformers import BertConfig, BertForSequenceClassification

from compress.config import TrainConfig
from compress.data import Encoded
from compress.distill.train import fit, make_accelerator


def tiny(seed=0):
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=32, num_labels=2))


def data(n=160, seed=0):
    rng = random.Random(seed)
    ids = [[1] + [rng.randint(5, 49) for _ in range(rng.randint(3, 12))] + [2] for _ in range(n)]
    return Encoded(ids, [int(row[1] > 27) for row in ids])


def ce(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits.float(), batch["labels"])
    return loss, {}


QUIET = Console(quiet=True)


def run(model, cfg, **kw):
    return fit(model, data(), 0, cfg, make_accelerator("cpu", "fp32", cfg.grad_accum_steps), 0, kw.pop("loss_fn", ce),
               "test", QUIET, **kw)


def test_killed_run_resumes_mid_epoch_to_the_same_weights(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-3, precision="fp32", checkpoint_every=7)
    reference = tiny()
    run(reference, cfg)  # 40 steps, dropout on: resuming must restore the RNG too

    calls = {"n": 0}

    def dies_at_step_25(model, batch):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return ce(model, batch)

    with pytest.raises(KeyboardInterrupt):
        run(tiny(), cfg, loss_fn=dies_at_step_25, checkpoint_dir=tmp_path)
    # last checkpoint: step 21, inside the second epoch, the only one kept
    assert [p.name for p in tmp_path.iterdir()] == ["step-000000021"]
    assert (tmp_path / "step-000000021" / "progress.json").is_file()
    resumed = tiny()
    metrics = run(resumed, cfg, checkpoint_dir=tmp_path)
    assert metrics["resumed_from_step"] == 21 and metrics["steps"] == 40
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_gradient_accumulation_counts_optimizer_steps():
    cfg = TrainConfig(epochs=1, batch_size=8, grad_accum_steps=4, learning_rate=1e-3, precision="fp32")
    metrics = run(tiny(), cfg)
    assert metrics["steps"] == 5 and metrics["grad_accum_steps"] == 4  # 20 micro-batches


def test_best_epoch_is_kept_and_early_stopping():
    cfg = TrainConfig(epochs=6, batch_size=8, learning_rate=1e-3, precision="fp32", early_stopping_patience=2)
    scores = iter([0.5, 0.9, 0.6, 0.7, 0.95, 0.99])
    snapshots = []

    def evaluate(model):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    model = tiny()
    metrics = run(model, cfg, evaluate=evaluate)
    assert metrics["validation_scores"] == [0.5, 0.9, 0.6, 0.7]  # stopped: 2 epochs without beating 0.9
    assert metrics["best_epoch"] == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k]), k  # the weights of epoch 2, not of the last epoch


def test_dropout_setting_reaches_every_dropout_and_the_saved_config():
    x = torch.tensor([[1, 7, 9, 30, 2]])

    def two_passes_agree(model):
        model.train()
        with torch.no_grad():
            return torch.equal(model(input_ids=x).logits, model(input_ids=x).logits)

    off = tiny()
    run(off, TrainConfig(epochs=1, batch_size=8, learning_rate=1e-3, precision="fp32", dropout=0.0))
    assert off.config.hidden_dropout_prob == 0.0 and off.config.attention_probs_dropout_prob == 0.0
    assert two_passes_agree(off)  # hidden, attention (SDPA reads its own probability) and classifier dropout all off

    wrapped = torch.nn.ModuleDict({"student": tiny()})  # as distillation passes it: the student inside a wrapper
    from compress.distill.train import set_dropout

    set_dropout(wrapped, 0.0)
    assert wrapped["student"].config.hidden_dropout_prob == 0.0 and two_passes_agree(wrapped["student"])

    default = tiny()
    run(default, TrainConfig(epochs=1, batch_size=8, learning_rate=1e-3, precision="fp32"))
    assert default.config.hidden_dropout_prob == 0.1 and not two_passes_agree(default)


def test_attention_kernel_auto_picks_math_only_where_it_was_measured_faster():
    from compress.distill.train import attention_kernel

    assert attention_kernel("auto", "cpu", "bf16", 64) == "math"
    assert attention_kernel("auto", "cpu", "bf16", 512) == "pytorch"
    assert attention_kernel("auto", "cpu", "no", 64) == "pytorch"
    assert attention_kernel("auto", "cuda", "bf16", 64) == "pytorch"
    assert attention_kernel("pytorch", "cpu", "bf16", 64) == "pytorch"
    metrics = run(tiny(), TrainConfig(epochs=1, batch_size=8, learning_rate=1e-3, precision="fp32", attention_kernel="math"))
    assert metrics["attention_kernel"] == "math"


def test_predict_logits_tracks_no_gradients():
    from compress.distill.train import predict_logits

    logits = predict_logits(tiny(), data(20), 0, 8, "cpu")
    assert logits.shape == (20, 2) and not logits.requires_grad
