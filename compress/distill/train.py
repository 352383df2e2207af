"""The training loop shared by teacher fine-tuning and distillation, run through Accelerate.

One process on CPU or one GPU as it is; several GPUs or nodes through ``accelerate launch``.
Mixed precision is autocast (bf16/fp16) over fp32 master weights; losses are fp32.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from compress.config import TrainConfig
from compress.data import Encoded, LengthGroupedBatches, collate

LossFn = Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]


def make_accelerator(device: str, precision: str):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # a second loop in one process may change precision
    return Accelerator(mixed_precision="no" if precision == "fp32" else precision, cpu=device == "cpu")


def fit(model: torch.nn.Module, data: Encoded, pad_id: int, cfg: TrainConfig, accelerator, seed: int,
        loss_fn: LossFn, desc: str, console) -> dict:
    """Train ``model`` in place on ``data`` with AdamW and a linear warm-up/decay schedule."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    sampler = LengthGroupedBatches([len(ids) for ids in data.input_ids], cfg.batch_size, seed=seed)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=collate(pad_id))
    per_epoch = len(loader)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith(no_decay)],
         "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if p.requires_grad and n.endswith(no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    model.train()
    step, seen, recent, started = 0, 0, [], time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not accelerator.is_main_process) as bar:
        epochs = math.ceil(total / per_epoch)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            todo = min(per_epoch, total - step)
            task = bar.add_task(f"{desc} epoch {epoch + 1}/{epochs}", total=todo, loss="-")
            for batch in loader:
                loss, parts = loss_fn(model, batch)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                seen += batch["labels"].shape[0]
                recent = (recent + [loss.item()])[-50:]
                bar.update(task, advance=1, loss=f"{sum(recent) / len(recent):.4f}")
                if not console.is_terminal and (step % max(1, total // 10) == 0 or step == total):
                    rate = step / (time.perf_counter() - started)  # logs and CI: a plain line every 10%
                    console.print(f"{desc}: step {step}/{total}, loss {sum(recent) / len(recent):.4f}, {rate:.2f} steps/s")
                if step >= total:
                    break
            if step >= total:
                break
    seconds = time.perf_counter() - started
    model = accelerator.unwrap_model(model)
    model.eval()
    return {
        "steps": step,
        "epochs": round(step / per_epoch, 3),
        "sentences": seen,
        "final_loss": round(sum(recent) / max(1, len(recent)), 5),
        "seconds": round(seconds, 1),
        "sentences_per_second": round(seen / max(seconds, 1e-9), 1),
        "precision": accelerator.mixed_precision,
        "device": str(accelerator.device),
    }


@torch.no_grad()
def predict_logits(model: torch.nn.Module, data: Encoded, pad_id: int, batch_size: int, device: str) -> torch.Tensor:
    """fp32 logits of ``model`` on every row of ``data``, in the original order."""
    from compress.data import eval_batches

    model.eval().to(device)
    pad = collate(pad_id)
    out = torch.empty((len(data), model.config.num_labels), dtype=torch.float32)
    for idx in eval_batches([len(ids) for ids in data.input_ids], batch_size):
        batch = pad([data[i] for i in idx])
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
        out[idx] = logits.float().cpu()
    return out
