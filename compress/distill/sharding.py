"""Training under FSDP (``accelerate launch --config_file pipelines/accelerate/fsdp.yaml``): parameters,
gradients and optimizer state sharded across the processes, each transformer block its own unit
(``fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP`` reads the model's ``_no_split_modules``).

Accelerate's FSDP wrapping changes a model in place (its class, and its parameters into shards), so ``fit``
shards a copy (:func:`shardable`) and, once trained, gathers the whole weights into the caller's model
(:func:`gather_into`): stages save it as they do without FSDP. A frozen teacher too large for one device is
sharded as well (:func:`shard_frozen`); without FSDP it is replicated on every process.

Accelerate 1.16 shards on GPUs (and other accelerators) only: on CPU, ``distributed_type: FSDP`` becomes plain
data parallelism (``MULTI_CPU``) without a word; :func:`warn_if_unsharded` says so.
"""

from __future__ import annotations

import copy
import os

import torch


def is_fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def shardable(model: torch.nn.Module, accelerator) -> torch.nn.Module:
    """What ``fit`` hands to ``accelerator.prepare``: ``model`` itself, or under FSDP a copy of it (the copy
    is moved into shards; ``model`` stays whole on the CPU for :func:`gather_into`)."""
    return copy.deepcopy(model) if is_fsdp(accelerator) else model


def full_state(wrapped: torch.nn.Module, accelerator) -> dict[str, torch.Tensor]:
    """The whole weights of a prepared model on the CPU, gathered from the shards under FSDP (every process
    must call this: it is a collective); ``{}`` on processes that do not receive them."""
    if is_fsdp(accelerator):
        return accelerator.get_state_dict(wrapped)
    return {k: v.detach().cpu().clone() for k, v in accelerator.unwrap_model(wrapped).state_dict().items()}


def gather_into(model: torch.nn.Module, wrapped: torch.nn.Module, accelerator) -> torch.nn.Module:
    """After training: under FSDP, the whole trained weights loaded into ``model`` (the caller's, not sharded);
    otherwise the unwrapped model, which is ``model`` itself. Every process calls it; the main process always
    receives the weights, and it alone writes the stage's files."""
    if not is_fsdp(accelerator):
        return accelerator.unwrap_model(wrapped)
    state = full_state(wrapped, accelerator)
    if state:
        model.load_state_dict(state)
    return model


def shard_frozen(teacher: torch.nn.Module, accelerator) -> torch.nn.Module:
    """The frozen teacher of token-level KD, ready for ``forward``: under FSDP sharded like the student (every
    process runs every step, so its all-gathers line up), otherwise whole on the process's device."""
    teacher.eval().requires_grad_(False)
    if not is_fsdp(accelerator):
        return teacher.to(accelerator.device)
    wrapped = accelerator.prepare(teacher)  # a model without an optimizer: FSDP2 shards it for forward only
    # prepare registers it for save_state: each checkpoint would gather and write the frozen teacher
    accelerator._models = [m for m in accelerator._models if m is not wrapped]
    return wrapped.eval()


def fsdp_requested() -> bool:
    """``accelerate launch`` was given an FSDP config (it exports ACCELERATE_USE_FSDP to every process)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def warn_if_unsharded(accelerator, console, desc: str) -> None:
    if fsdp_requested() and not is_fsdp(accelerator) and accelerator.num_processes > 1:
        console.print(f"[yellow]warning[/] {desc}: the accelerate config asks for FSDP, but Accelerate shards on "
                      f"GPUs only; on {accelerator.device.type} every process holds the whole model (data parallel)")
