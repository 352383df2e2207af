"""PyTorch dynamic int8 of every nn.Linear, for a torch CPU target, saved so the bench can load it.

``torch.ao.quantization`` is deprecated (removal announced for 2.10) in favour of torchao, so torchao
is used when it is installed (``pip install 'compress[torchao]'``): int8 weights and dynamically
quantized int8 activations, saved as safetensors through torchao's flattening of its tensor
subclasses (header keys sorted: the same weights are the same bytes on every save). Without torchao, ``torch.ao.quantization.quantize_dynamic`` is the fallback: its
packed weights are TorchScript objects that safetensors cannot hold, and pickling them would make
the bench load pickles, so the folder records the recipe and the fp32 student's checksum instead
and the model is re-quantized from the fp32 safetensors when it is loaded (deterministic: dynamic
quantization has no calibration).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import warnings
from pathlib import Path

from compress import models
from compress.errors import CompressError
from compress.io import read_json, sha256_file, write_json

RECIPE = "quantization.json"


def torchao_version() -> str | None:
    import logging

    # torchao registers enums with torch's pytree, which warns about it, and logs every CUDA extension
    # it cannot load on a CPU build: noise on every import.
    for name in ("torch.utils._pytree", "torchao"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import torchao  # noqa: F401
    except Exception:  # not installed, or built for another torch: fall back
        return None
    return importlib.metadata.version("torchao")


def quantize(model, engine: str):
    """Dynamic int8 of every nn.Linear of ``model`` (in place for torchao), eval mode."""
    import torch

    model.eval()
    if engine == "torchao":
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(model, Int8DynamicActivationInt8WeightConfig(),
                  filter_fn=lambda module, fqn: isinstance(module, torch.nn.Linear))
        return model
    with warnings.catch_warnings():  # the deprecation warning is the reason torchao comes first
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def save(model, tokenizer, folder: Path, source: Path, engine: str) -> dict:
    """Write the variant folder: the tokenizer, and either int8 safetensors (torchao) or the recipe
    to re-quantize ``source`` (torch.ao). Returns the recipe."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    recipe = {"method": "torch_dynamic", "modules": "nn.Linear", "weights": "int8", "activations": "int8, dynamic"}
    if engine == "torchao":
        import safetensors.torch
        from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

        model.config.save_pretrained(folder)
        tensors, metadata = flatten_tensor_state_dict(model.state_dict())
        tmp = folder / ".model.safetensors.tmp"
        tmp.write_bytes(sorted_header(safetensors.torch.save(tensors, metadata=metadata)))
        tmp.replace(folder / "model.safetensors")
        recipe.update(engine=f"torchao {torchao_version()}", storage="safetensors")
    else:
        recipe.update(engine=f"torch.ao {importlib.metadata.version('torch')}", storage="requantize",
                      source=os.path.relpath(source.resolve(), folder.resolve()),  # the run folder may move
                      source_sha256=sha256_file(source / "model.safetensors"))
    write_json(folder / RECIPE, recipe)
    return recipe


def sorted_header(data: bytes) -> bytes:
    """A safetensors file with its JSON header's keys sorted: the library writes the metadata map (torchao's
    description of each tensor subclass) in its hash map's order, which changes from process to process, so the
    same weights would give other bytes on every save. The tensors' bytes and offsets are unchanged; the header
    is padded with spaces to a multiple of 8 bytes, as the library pads it."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size:]


def load(folder: Path):
    """(model, tokenizer) of a saved torch_dynamic variant; never unpickles anything."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    recipe = read_json(folder / RECIPE)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if recipe["storage"] == "requantize":
        source = folder / recipe["source"]
        weights = source / "model.safetensors"
        if not weights.is_file() or sha256_file(weights) != recipe["source_sha256"]:
            raise CompressError(f"{folder}: the fp32 student it is re-quantized from ({weights}) is gone or changed; "
                                f"delete {folder.parent} and run again")
        model, _ = models.load_saved(source)
        return quantize(model, "torch.ao"), tokenizer
    if torchao_version() is None:
        raise CompressError(f"{folder}: saved with {recipe['engine']}, which is not installed here "
                            f"(pip install 'compress[torchao]')")
    import safetensors
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(folder))
    with safetensors.safe_open(str(folder / "model.safetensors"), "pt") as fh:
        metadata, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    state, leftover = unflatten_tensor_state_dict(tensors, metadata)
    if leftover:
        raise CompressError(f"{folder / 'model.safetensors'}: tensors torchao could not place: {sorted(leftover)[:3]}")
    missing, unexpected = model.load_state_dict(state, assign=True, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise CompressError(f"{folder / 'model.safetensors'}: does not fit the model (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]})")
    return model.eval(), tokenizer


def weight_files(folder: Path) -> list[Path]:
    """The files the variant's weights are loaded from (its own, or the fp32 student it re-quantizes)."""
    recipe = json.loads((folder / RECIPE).read_text())
    if recipe["storage"] == "requantize":
        return [folder / recipe["source"] / "model.safetensors"]
    return [folder / "model.safetensors"]
