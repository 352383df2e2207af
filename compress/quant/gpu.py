"""The GPU-only methods: ONNX float16 and bitsandbytes int8 / NF4.

Both are measured where they run, on CUDA; where there is none they are skipped and the reason is
recorded (the config already refused them unless ``targets`` has gpu). bitsandbytes models stay
PyTorch models on CUDA: they are never exported to ONNX or shipped.
"""

from __future__ import annotations

from pathlib import Path

CUDA_EP = "CUDAExecutionProvider"


def onnx_cuda_missing() -> str | None:
    """Why ONNX Runtime cannot run a float16 graph on a GPU here, or None when it can."""
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if CUDA_EP not in providers:
        return (f"no CUDA: this ONNX Runtime has only {', '.join(providers)} (fp16 needs onnxruntime-gpu and an "
                f"NVIDIA GPU)")
    return None


def bnb_missing() -> str | None:
    """Why bitsandbytes cannot quantize here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA: torch sees no GPU, and bitsandbytes' int8 / NF4 kernels run on CUDA only"
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # not installed, or no binary for this CUDA
        return f"bitsandbytes cannot be imported ({type(exc).__name__}: {exc}); pip install bitsandbytes"
    return None


def convert_fp16(source: Path, target: Path) -> None:
    """float16 weights and activations, inputs and outputs kept as they are (int64 ids, fp32 logits);
    LayerNorm-like ops keep fp32 where ONNX Runtime's converter knows they need it."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(source)))
    model.convert_float_to_float16(keep_io_types=True)
    tmp = target.with_name(target.name + ".tmp")
    model.save_model_to_file(str(tmp))
    tmp.replace(target)


def quantize_bnb(source: Path, target: Path, method: str):
    """Load the fp32 student through transformers' bitsandbytes integration onto CUDA and save it
    (safetensors; the quantization config travels in config.json). Returns the model, on CUDA."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BitsAndBytesConfig

    if method == "bnb_int8":
        qconfig = BitsAndBytesConfig(load_in_8bit=True)
    else:
        qconfig = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16)
    model = AutoModelForSequenceClassification.from_pretrained(source, quantization_config=qconfig, device_map="cuda",
                                                               use_safetensors=True)
    model.save_pretrained(target, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return model.eval()


def load_bnb(folder: Path):
    """A saved bitsandbytes variant, on CUDA."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder, device_map="cuda", use_safetensors=True)
    return model.eval(), AutoTokenizer.from_pretrained(folder)
