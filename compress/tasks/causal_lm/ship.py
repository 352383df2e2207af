"""Ship a causal LM: the edge bundle exports/<name>/ (the shipped ONNX decoder with its KV cache, its tokenizer,
golden prompts and tokens, a model card, manifest.json); see compress/tasks/causal_lm/bundle.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from compress import __version__, onnxrun, records, signing
from compress.errors import CompressError
from compress.io import atomic_dir, file_index, write_json, write_text
from compress.layout import (
    CARD_FILE,
    DECODER_TOKENIZER_FILES,
    GOLDEN_FILE,
    MANIFEST_FILE,
    ONNX_FILE,
    SIGNATURE_FILE,
    bundle_dir,
)
from compress.tasks.causal_lm import TASK
from compress.tasks.causal_lm.bundle import golden_set, model_card

NAME = "ship"
DEPENDS = ("export", "quantize", "report")
CONFIG = ("name", "ship", "data")


def outputs(cfg, run_dir: Path) -> list[Path]:
    """The bundle lives outside the run folder: the stage reruns if it is gone, and a rerun checks each of its files
    against the stage's record before it skips the stage."""
    return [bundle_dir(cfg.ship.dir, cfg.name).root] if cfg.ship.enabled else []


def run(cfg, ctx) -> dict:
    if not cfg.ship.enabled:
        ctx.console.print("ship: disabled (ship.enabled: false)")
        return {"enabled": False}
    report = records.read_report(ctx.layout.report_json)
    variant = report.variant(cfg.ship.variant)
    if variant is None or variant.format != "onnx":
        raise CompressError(f"ship.variant: {cfg.ship.variant} is not an ONNX variant of this run")
    source_dir = ctx.layout.export_dir("student")
    final = bundle_dir(cfg.ship.dir, cfg.name).root
    with atomic_dir(final) as tmp:
        shutil.copyfile(variant.path, tmp / ONNX_FILE)
        for name in DECODER_TOKENIZER_FILES:
            if (source_dir / name).is_file():
                shutil.copyfile(source_dir / name, tmp / name)
        golden = golden_set(cfg, tmp)
        write_json(tmp / GOLDEN_FILE, golden)
        spec = onnxrun.model_spec(tmp / ONNX_FILE)
        figures = variant.dump()
        metrics = {k: figures[k] for k in ("perplexity", "perplexity_retention", "perplexity_difference",
                                           "time_to_first_token_ms", "tokens_per_second", "size_bytes",
                                           "peak_memory_bytes", "parameters")}
        write_text(tmp / CARD_FILE, model_card(cfg, report, variant, spec, golden))
        manifest = records.Manifest(
            schema_version=records.SCHEMA_VERSION, name=cfg.name, task=TASK.name, variant=variant.name,
            precision=variant.precision, **spec, metrics=metrics, eval=report.get("eval"), query=report.get("query"),
            golden={"file": GOLDEN_FILE, "samples": len(golden["samples"]), "atol": golden["atol"],
                    "new_tokens": golden["new_tokens"]},
            config_hash=report.config_hash, compress_version=__version__,
            onnxruntime_version=golden["computed_with"]["onnxruntime"],
            files=file_index(tmp),  # every file but the manifest itself; compress verify fails on any file not listed
        )
        records.write(tmp / MANIFEST_FILE, manifest)
    if cfg.ship.sign_key:  # once the folder has its name: the signature records it
        signing.sign_bundle(final, cfg.ship.sign_key, "ship.sign_key")
    ctx.console.print(f"ship: {final}/ ({variant.name}, {len(manifest.files)} files + {MANIFEST_FILE}"
                      + (f", signed with {cfg.ship.sign_key} ({SIGNATURE_FILE})" if cfg.ship.sign_key else "")
                      + f", {len(golden['samples'])} golden prompts; check it with: compress verify {final}"
                      + (" --key PUBLIC.pem)" if cfg.ship.sign_key else ")"))
    return {"bundle": str(final), "variant": variant.name, "files": sorted(manifest.files),
            "signed": bool(cfg.ship.sign_key)}
