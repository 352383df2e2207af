"""Ship: the edge bundle ``exports/<name>/``: the model, its tokenizer, a manifest with the
sha256 of every file, the input/output spec, the labels and the run's figures."""

from __future__ import annotations

import shutil
from pathlib import Path

from compress.errors import CompressError
from compress.io import atomic_dir, read_json, sha256_file, write_json, write_text

NAME = "ship"
DEPENDS = ("export", "quantize", "report")
CONFIG = ("name", "ship")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "config.json")


def outputs(cfg, run_dir: Path) -> list[Path]:
    """The bundle lives outside the run folder: the stage reruns if it is gone."""
    return [Path(cfg.ship.dir) / cfg.name / "manifest.json"] if cfg.ship.enabled else []


def run(cfg, ctx) -> dict:
    if not cfg.ship.enabled:
        ctx.console.print("ship: disabled (ship.enabled: false)")
        return {"enabled": False}
    import onnx

    report = read_json(ctx.run_dir / "report.json")
    variant = next((v for v in report["variants"] if v["name"] == cfg.ship.variant), None)
    if variant is None:  # a GPU variant skipped where there is no CUDA
        skipped = {v["name"]: v.get("reason") for v in report["quantize"].get("variants", []) if v["status"] == "skipped"}
        raise CompressError(f"ship.variant: {cfg.ship.variant} was not produced"
                            + (f" ({skipped[cfg.ship.variant]})" if cfg.ship.variant in skipped else "")
                            + "; ship student-onnx or a variant this machine can make")
    source_dir = ctx.stage_dir("export") / "student"
    final = Path(cfg.ship.dir) / cfg.name
    with atomic_dir(final) as tmp:
        shutil.copyfile(variant["path"], tmp / "model.onnx")
        for name in TOKENIZER_FILES:
            if (source_dir / name).is_file():
                shutil.copyfile(source_dir / name, tmp / name)
        graph = onnx.load(str(tmp / "model.onnx"), load_external_data=False).graph
        config = read_json(tmp / "config.json")
        write_text(tmp / "README.md", model_card(cfg, report, variant))
        manifest = {
            "name": cfg.name,
            "variant": variant["name"],
            "precision": variant["precision"],
            "inputs": [_tensor_spec(t) for t in graph.input],
            "outputs": [_tensor_spec(t) for t in graph.output],
            "labels": {str(k): v for k, v in config.get("id2label", {}).items()},
            "metrics": {k: variant[k] for k in ("accuracy", "retention", "speedup", "size_bytes", "latency_ms",
                                                "peak_memory_bytes", "parameters")},
            "config_hash": report["config_hash"],
            "created": report["created"],
            "files": {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                      for p in sorted(tmp.iterdir()) if p.is_file()},
        }
        write_json(tmp / "manifest.json", manifest)
    ctx.console.print(f"ship: {final}/ ({variant['name']}, {len(manifest['files'])} files + manifest.json)")
    return {"bundle": str(final), "variant": variant["name"], "files": sorted(manifest["files"])}


def _tensor_spec(value) -> dict:
    import onnx

    t = value.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in t.shape.dim]
    return {"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}


def model_card(cfg, report: dict, variant: dict) -> str:
    lat = variant["latency_ms"]
    return "\n".join([
        f"# {cfg.name}",
        "",
        f"A {variant['parameters'] / 1e6:.1f}M-parameter student distilled from `{cfg.teacher.model or 'a random teacher'}` "
        f"by compress (T={cfg.distill.temperature}, alpha={cfg.distill.alpha}), exported to ONNX, {variant['precision']}.",
        "",
        f"- accuracy {variant['accuracy']:.4f} on {report['eval']['sentences']} `{report['eval']['split']}` sentences, "
        f"{variant['retention']:.1%} of the teacher's",
        f"- {variant['speedup']:.2f}x the teacher's speed (PyTorch fp32), p50 {lat['p50']:.2f} ms at batch "
        f"{report['target']['batch_size']}, length {report['target']['sequence_length']}, {report['target']['threads']} CPU threads",
        f"- {variant['size_bytes'] / 1e6:.1f} MB on disk",
        "",
        "Files: `model.onnx` (inputs input_ids, attention_mask[, token_type_ids]; output logits), the tokenizer, "
        "and `manifest.json` with the sha256 of every file. Run it with onnxruntime and the `tokenizers` library.",
        "",
    ])
