"""The peer a careful user builds today without compress: the teacher itself exported to ONNX with optimum
(``ORTModelForSequenceClassification.from_pretrained(..., export=True)``) and dynamically quantized to int8
with optimum's ``ORTQuantizer`` and its AVX-512 VNNI preset (``AutoQuantizationConfig.avx512_vnni``,
``is_static=False``; per-channel weights by default, as the preset has it). No distillation, no graph
fusion beyond what ONNX Runtime does when it loads the model, no vocabulary trim.

``build`` caches the result in a folder (``<run>/flagship/peer`` in benchmarks/flagship.py) keyed on the
teacher's weights, the settings and the versions of optimum and ONNX Runtime, so that reruns reuse it.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from pathlib import Path

from compress.io import atomic_dir, read_json, sha256_file, write_json

QUANTIZED = "model_quantized.onnx"  # what ORTQuantizer.quantize writes (file_suffix "quantized")
INFO = "peer.json"


def key(teacher_dir: Path, per_channel: bool) -> dict:
    """What the cached peer depends on."""
    versions = {}
    for name in ("optimum", "optimum-onnx", "onnxruntime", "onnx", "transformers", "torch"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"teacher_weights": {p.name: sha256_file(p) for p in sorted(Path(teacher_dir).glob("*.safetensors"))},
            "recipe": "optimum export + ORTQuantizer avx512_vnni dynamic", "per_channel": per_channel,
            "versions": versions}


def build(teacher_dir: Path, folder: Path, per_channel: bool = True, rebuild: bool = False) -> dict:
    """The peer of ``teacher_dir`` in ``folder`` (built there unless an up-to-date one is): returns its
    peer.json: ``{"path": <int8 .onnx>, "fp32_path": <exported .onnx>, "key": .., "seconds": .., "cached": ..}``."""
    teacher_dir, folder = Path(teacher_dir), Path(folder)
    wanted = key(teacher_dir, per_channel)
    if not rebuild and (folder / INFO).is_file() and (folder / "int8" / QUANTIZED).is_file():
        info = read_json(folder / INFO)
        if info.get("key") == wanted:
            return {**info, "path": str(folder / "int8" / QUANTIZED), "fp32_path": str(folder / "onnx" / "model.onnx"),
                    "cached": True}
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    for name in ("optimum", "optimum.onnxruntime", "optimum.exporters", "optimum.exporters.onnx", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    started = time.perf_counter()
    with atomic_dir(folder) as tmp:
        exported = ORTModelForSequenceClassification.from_pretrained(str(teacher_dir), export=True)
        exported.save_pretrained(tmp / "onnx")
        del exported
        export_seconds = time.perf_counter() - started
        qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=per_channel)
        quantizer = ORTQuantizer.from_pretrained(tmp / "onnx", file_name="model.onnx")
        quantizer.quantize(quantization_config=qconfig, save_dir=tmp / "int8")
        info = {"key": wanted, "quantization_config": str(qconfig), "export_seconds": round(export_seconds, 1),
                "seconds": round(time.perf_counter() - started, 1)}
        write_json(tmp / INFO, info)
    return {**info, "path": str(folder / "int8" / QUANTIZED), "fp32_path": str(folder / "onnx" / "model.onnx"),
            "cached": False}
