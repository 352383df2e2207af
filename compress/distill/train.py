"""The training loop shared by teacher fine-tuning, distillation and the baselines, on Accelerate.

One process on CPU or one GPU as it is; several processes, GPUs or nodes through
``accelerate launch`` (or ``torchrun``): every global batch is split across the processes by
the sampler, so the global batch, the number of steps and the loss curve do not depend on how
many processes run. Mixed precision is autocast (bf16/fp16) over fp32 master weights;
losses are fp32. Gradient accumulation, a warm-up/decay schedule, evaluation after each epoch
with the best weights kept and early stopping, and checkpoints a killed run resumes from
mid-epoch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import torch

from compress.config import TrainConfig
from compress.data import Encoded, LengthGroupedBatches, collate, encode, eval_batches, validation_split
from compress.distill.sharding import full_state, gather_into, shardable, warn_if_unsharded
from compress.envinfo import resolve_precision
from compress.errors import CompressError

LossFn = Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]
Evaluate = Callable[[torch.nn.Module], float]
PROGRESS = "progress.json"


def make_accelerator(device: str, precision: str, grad_accum_steps: int = 1, log_with: str | None = None,
                     project_dir: Path | None = None):
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # a second loop in one process may change precision; the process group stays
    # split_batches: one global batch per step, so the prepared scheduler steps once per optimizer step, not once
    # per process (Accelerate 1.16 ignores the split_batches argument of Accelerator: only this config is read)
    return Accelerator(mixed_precision="no" if precision == "fp32" else precision, cpu=device == "cpu",
                       gradient_accumulation_steps=grad_accum_steps,
                       dataloader_config=DataLoaderConfiguration(split_batches=True), log_with=log_with,
                       project_dir=str(project_dir) if project_dir else None)


def fit(model: torch.nn.Module, data: Encoded, pad_id: int, cfg: TrainConfig, accelerator, seed: int,
        loss_fn: LossFn, desc: str, console, evaluate: Evaluate | None = None,
        checkpoint_dir: Path | None = None) -> dict:
    """Train ``model`` in place on ``data`` with AdamW and a linear warm-up/decay schedule.

    ``evaluate(model) -> score`` (higher is better) runs after every epoch: the best weights are
    kept and training stops after ``cfg.early_stopping_patience`` epochs without improvement.
    With ``checkpoint_dir``, the full training state is saved every ``cfg.checkpoint_every``
    optimizer steps and a later call with the same folder resumes from it. Under FSDP a copy of ``model`` is
    trained in shards and the whole weights are gathered back into ``model`` (compress.distill.sharding).
    """
    from transformers import get_linear_schedule_with_warmup

    if cfg.batch_size % accelerator.num_processes:
        raise CompressError(f"train.batch_size: {cfg.batch_size} is not divisible by the "
                            f"{accelerator.num_processes} processes it is split across")
    torch.manual_seed(seed)
    if cfg.dropout is not None:
        set_dropout(model, cfg.dropout)
    warn_if_unsharded(accelerator, console, desc)
    wrapped = shardable(model, accelerator)
    # The sampler shards each global batch across processes itself (the loader is not prepared).
    sampler = LengthGroupedBatches([len(ids) for ids in data.input_ids], cfg.batch_size, seed=seed,
                                   num_shards=accelerator.num_processes, shard=accelerator.process_index)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=collate(pad_id))
    accum = cfg.grad_accum_steps
    per_epoch = len(loader)  # batches (micro-steps) per epoch
    total_micro = cfg.max_steps * accum if cfg.max_steps else max(1, math.ceil(cfg.epochs * per_epoch))
    total = math.ceil(total_micro / accum)  # optimizer steps
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = [
        {"params": [p for n, p in wrapped.named_parameters() if p.requires_grad and not n.endswith(no_decay)],
         "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in wrapped.named_parameters() if p.requires_grad and n.endswith(no_decay)],
         "weight_decay": 0.0},
    ]
    # fused: one kernel for all parameters instead of a loop over them; on a 2-core CPU the MiniLM step takes
    # 30 ms instead of 156 (a quarter of the training time went to the optimizer)
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=accelerator.device.type in ("cpu", "cuda"))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    wrapped, optimizer, scheduler = accelerator.prepare(wrapped, optimizer, scheduler)
    kernel = attention_kernel(cfg.attention_kernel, accelerator.device.type, accelerator.mixed_precision,
                              max((len(ids) for ids in data.input_ids), default=0))

    progress = {"micro": 0, "epoch": 0, "batch_in_epoch": 0, "curve": [], "recent": [], "scores": [],
                "best": None, "best_epoch": None, "seen": 0, "resumed_from": None}
    best_state = resume_rng = None
    pending_checkpoint = False
    latest = latest_checkpoint(checkpoint_dir) if checkpoint_dir else None
    if latest is not None:
        try:
            accelerator.load_state(str(latest / "state"))
            resume_rng = torch.load(latest / f"rng_{accelerator.process_index}.pt", weights_only=True)
            progress.update(json.loads((latest / PROGRESS).read_text()))
            if (latest / "best.pt").is_file():
                best_state = torch.load(latest / "best.pt", weights_only=True)  # tensors only: no pickle code
        except Exception as exc:  # torch, safetensors and accelerate each raise their own kinds
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise CompressError(f"{latest}: the training checkpoint cannot be read ({first}); delete that folder "
                                f"and run again to start {desc} over") from None
        progress["resumed_from"] = progress["micro"]
        console.print(f"{desc}: resuming from the checkpoint at step {progress['micro'] // accum}/{total} ({latest.name})")

    if accelerator.log_with:
        accelerator.init_trackers(desc.replace(" ", "-"))
    curve_every = max(1, total // 200)
    started = time.perf_counter()
    micro_at_start = progress["micro"]
    wrapped.train()
    with _bar(console, accelerator) as bar:
        task = bar.add_task(desc, total=total, completed=progress["micro"] // accum, loss="-")
        while progress["micro"] < total_micro:
            sampler.set_epoch(progress["epoch"])
            sampler.skip = progress["batch_in_epoch"]
            for batch in loader:
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                # Checkpoints are taken here, at the start of a step, with the random state of this very
                # point: a resumed run restores it here too, so dropout draws the same numbers.
                if pending_checkpoint:
                    _save_checkpoint(accelerator, checkpoint_dir, progress, best_state)
                    pending_checkpoint = False
                if resume_rng is not None:
                    _set_rng(resume_rng)
                    resume_rng = None
                with accelerator.accumulate(wrapped), attention_context(kernel):
                    loss, _ = loss_fn(wrapped, batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(wrapped.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                value = accelerator.reduce(loss.detach(), "mean").item() if accelerator.num_processes > 1 else loss.item()
                progress["micro"] += 1
                progress["batch_in_epoch"] += 1
                progress["seen"] += batch["labels"].shape[0] * accelerator.num_processes  # approximate: shards of an odd batch differ by one
                progress["recent"] = (progress["recent"] + [value])[-50:]
                step = progress["micro"] // accum
                mean = sum(progress["recent"]) / len(progress["recent"])
                if accelerator.sync_gradients:
                    if step % curve_every == 0:
                        progress["curve"].append([step, round(value, 6)])
                    if accelerator.log_with:
                        accelerator.log({"loss": value, "lr": scheduler.get_last_lr()[0]}, step=step)
                    bar.update(task, completed=step, loss=f"{mean:.4f}")
                    if not console.is_terminal and (step % max(1, total // 10) == 0 or step == total):
                        rate = (progress["micro"] - micro_at_start) / accum / (time.perf_counter() - started)
                        console.print(f"{desc}: step {step}/{total}, loss {mean:.4f}, {rate:.2f} steps/s")
                    if checkpoint_dir and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
                        pending_checkpoint = True
                if progress["micro"] >= total_micro:
                    break
            if progress["batch_in_epoch"] < per_epoch:
                break  # max_steps ended training inside an epoch
            progress["epoch"] += 1
            progress["batch_in_epoch"] = 0
            if evaluate is None:
                continue
            score = evaluate(accelerator.unwrap_model(wrapped))
            wrapped.train()
            progress["scores"].append(round(score, 5))
            console.print(f"{desc}: epoch {progress['epoch']} validation score {score:.4f}")
            if progress["best"] is None or score > progress["best"]:
                progress["best"], progress["best_epoch"] = score, progress["epoch"]
                best_state = full_state(wrapped, accelerator)
            elif cfg.early_stopping_patience and progress["epoch"] - progress["best_epoch"] >= cfg.early_stopping_patience:
                console.print(f"{desc}: early stop, no improvement for {cfg.early_stopping_patience} epoch(s)")
                break
    seconds = time.perf_counter() - started
    if accelerator.log_with:
        accelerator.end_training()
    model = gather_into(model, wrapped, accelerator)
    if best_state and progress["best_epoch"] != progress["epoch"]:
        model.load_state_dict(best_state)  # the best epoch's weights, not the last one's
    model.eval()
    trained = progress["micro"] - micro_at_start
    recent = progress["recent"]
    return {
        "steps": progress["micro"] // accum,
        "grad_accum_steps": accum,
        "processes": accelerator.num_processes,
        "distributed_type": accelerator.distributed_type.value,  # NO, MULTI_CPU, MULTI_GPU (data parallel), FSDP
        "epochs": round(progress["micro"] / per_epoch, 3),
        "sentences": progress["seen"],
        "final_loss": round(sum(recent) / max(1, len(recent)), 5),
        "loss_curve": progress["curve"],
        "validation_scores": progress["scores"],
        "best_epoch": progress["best_epoch"],
        "resumed_from_step": progress["resumed_from"] // accum if progress["resumed_from"] else None,
        "seconds": round(seconds, 1),
        "sentences_per_second": round(trained * cfg.batch_size / max(seconds, 1e-9), 1),
        "precision": accelerator.mixed_precision,
        "attention_kernel": kernel,
        "device": str(accelerator.device),
    }


def attention_kernel(choice: str, device: str, precision: str, longest: int) -> str:
    """The scaled-dot-product attention kernel to train with: ``math`` or ``pytorch`` (PyTorch's own choice).

    auto picks math on CPU in bf16 for sequences up to 128 tokens. There, with dropout off, PyTorch picks its
    flash kernel, and a training step of the 3-layer MiniLM student on SST-2 batches of 32 took 1.3-1.5x as long
    as with the math kernel on a 2-core Xeon (``benchmarks/train_step.py``; 1.3-1.8x on unpadded batches of 12 to 40
    tokens); at 512 tokens, and in fp32, the flash kernel was faster.
    """
    if choice != "auto":
        return choice
    return "math" if device == "cpu" and precision == "bf16" and longest <= 128 else "pytorch"


def attention_context(kernel: str):
    if kernel == "math":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint under ``folder``: a ``step-N`` folder holding progress.json (written last),
    or ``folder`` itself when it holds one (the layout of compress 0.1's first checkpoints)."""
    if (folder / PROGRESS).is_file():
        return folder
    done = [p for p in folder.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and (p / PROGRESS).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def _save_checkpoint(accelerator, folder: Path, progress: dict, best_state) -> None:
    """The training state into a new ``step-N`` folder, built under ``step-N.tmp`` and renamed into place with
    progress.json inside it (written last); older checkpoints are deleted only then. A run killed at any point
    leaves the previous checkpoint whole, and a half-written one is never read (it has no progress.json)."""
    final = folder / f"step-{progress['micro']:09d}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / "state"))
    torch.save(_get_rng(), tmp / f"rng_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if best_state is not None:
            torch.save(best_state, tmp / "best.pt")
        with open(tmp / PROGRESS, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(progress))
            fh.flush()
            os.fsync(fh.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in folder.iterdir():  # the previous checkpoints, and those of the first layout
            if old == final:
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    accelerator.wait_for_everyone()


def _get_rng() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _bar(console, accelerator):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console, disable=not accelerator.is_main_process)


def set_dropout(model: torch.nn.Module, p: float) -> int:
    """Set every dropout of ``model`` to ``p``, in place: the ``nn.Dropout`` modules, the probabilities that
    attention kernels read from their modules (``dropout_prob`` in BERT's SDPA attention, for instance), and the
    config's dropout fields, so the saved config says how the weights were trained. Returns the modules changed."""
    changed = 0
    configs = {}  # the config of every model inside (a distillation wrapper holds the student as a submodule)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
            changed += 1
        for name in ("dropout_prob", "attention_dropout", "dropout_p"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, p)
        config = getattr(module, "config", None)
        if hasattr(config, "to_dict"):
            configs[id(config)] = config
    for config in configs.values():
        for key, value in vars(config).items():
            if isinstance(value, float) and ("dropout" in key or key.endswith("pdrop")):
                setattr(config, key, p)
    return changed


@torch.no_grad()
def predict_logits(model: torch.nn.Module, data: Encoded, pad_id: int, batch_size: int, device: str) -> torch.Tensor:
    """fp32 logits of ``model`` on every row of ``data``, in the original order."""
    model.eval().to(device)
    pad = collate(pad_id)
    out = torch.empty((len(data), model.config.num_labels), dtype=torch.float32)
    for idx in eval_batches([len(ids) for ids in data.input_ids], batch_size):
        batch = pad([data[i] for i in idx])
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
        out[idx] = logits.float().cpu()
    return out


def accuracy(model: torch.nn.Module, data: Encoded, pad_id: int, device: str, batch_size: int = 128) -> float:
    logits = predict_logits(model, data, pad_id, batch_size, device)
    return float((logits.argmax(-1) == torch.tensor(data.labels)).float().mean())


def validation_evaluator(cfg, tokenizer, device: str, pick: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m):
    """``evaluate(model) -> accuracy`` on data.validation_split, or None when there is none.
    ``pick`` finds the classifier inside what is trained (the distillation wrapper holds the student)."""
    split = validation_split(cfg)
    if split is None:
        return None
    data = encode(tokenizer, split, cfg.data.max_length)
    return lambda model: accuracy(pick(model), data, tokenizer.pad_token_id, device)


def accelerator_for(tcfg: TrainConfig, ctx):
    """The Accelerator of one training stage: its precision, accumulation and trackers."""
    return make_accelerator(ctx.device, resolve_precision(tcfg.precision, ctx.device), tcfg.grad_accum_steps,
                            tcfg.log_with, ctx.run_dir / "logs")
