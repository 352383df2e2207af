"""Ship: the edge bundle ``exports/<name>/``: the model (``model.onnx``, and ``model.ort`` for ONNX Runtime
Mobile), its tokenizer, ``golden.json`` (real sentences, their token ids and the logits the bundled model
gives them), a model card, and a manifest with the sha256 of every file, the input/output spec, the labels
and the run's figures. ``compress verify`` checks a bundle against its manifest and replays the golden set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from compress import __version__, onnxrun, records, signing
from compress.bench import rounds
from compress.data import eval_split
from compress.errors import CompressError
from compress.io import atomic_dir, file_index, read_json, write_json, write_text
from compress.layout import (
    CARD_FILE,
    ENCODER_TOKENIZER_FILES,
    GOLDEN_FILE,
    MANIFEST_FILE,
    ONNX_FILE,
    ORT_FILE,
    SIGNATURE_FILE,
    bundle_dir,
)
from compress.tasks.classification import TASK, ort
from compress.tasks.classification.golden import TOLERANCE

NAME = "ship"
DEPENDS = ("export", "quantize", "mobile", "report")
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
    if variant is None:  # a GPU variant skipped where there is no CUDA
        skipped = {v["name"]: v.get("reason") for v in report.get("quantize").get("variants", []) if v["status"] == "skipped"}
        raise CompressError(f"ship.variant: {cfg.ship.variant} was not produced"
                            + (f" ({skipped[cfg.ship.variant]})" if cfg.ship.variant in skipped else "")
                            + "; ship student-onnx or a variant this machine can make")
    mobile_metrics = records.read_stage(ctx.layout.record("mobile")).metrics
    source_dir = ctx.layout.export_dir("student")
    final = bundle_dir(cfg.ship.dir, cfg.name).root
    with atomic_dir(final) as tmp:
        shutil.copyfile(variant.path, tmp / ONNX_FILE)
        if mobile_metrics.get("enabled"):
            shutil.copyfile(ctx.layout.ort_model, tmp / ORT_FILE)
        for name in ENCODER_TOKENIZER_FILES:
            if (source_dir / name).is_file():
                shutil.copyfile(source_dir / name, tmp / name)
        labels = label_names(cfg, read_json(tmp / "config.json"))
        golden = golden_set(cfg, tmp, labels)
        write_json(tmp / GOLDEN_FILE, golden)
        spec = onnxrun.model_spec(tmp / ONNX_FILE)
        mobile_summary = ort.summary(mobile_metrics)
        write_text(tmp / CARD_FILE, model_card(cfg, report, variant, spec, labels, golden, mobile_summary))
        figures = variant.dump()
        manifest = records.Manifest(
            schema_version=records.SCHEMA_VERSION, name=cfg.name, task=TASK.name, variant=variant.name,
            precision=variant.precision, **spec, labels=labels,
            metrics={**{k: figures[k] for k in ("accuracy", "accuracy_ci95", "retention", "speedup", "size_bytes",
                                                "latency_ms", "peak_memory_bytes", "parameters", "speedup_range",
                                                "speedup_flags", "flags") if k in figures},
                     **{k: figures[k] for k in ("accuracy_batch1", "retention_batch1") if k in figures}},
            eval=report.get("eval"), target=report.get("target"),
            golden={"file": GOLDEN_FILE, "samples": len(golden["samples"]), "atol": golden["atol"]},
            mobile=mobile_summary, config_hash=report.config_hash, compress_version=__version__,
            onnxruntime_version=golden["computed_with"]["onnxruntime"],
            files=file_index(tmp),  # every file but the manifest itself; compress verify fails on any file not listed
        )
        records.write(tmp / MANIFEST_FILE, manifest)
    if cfg.ship.sign_key:  # once the folder has its name: the signature records it
        signing.sign_bundle(final, cfg.ship.sign_key, "ship.sign_key")
    ctx.console.print(f"ship: {final}/ ({variant.name}, {len(manifest.files)} files + {MANIFEST_FILE}"
                      + (f", signed with {cfg.ship.sign_key} ({SIGNATURE_FILE})" if cfg.ship.sign_key else "")
                      + f", {len(golden['samples'])} golden sentences; check it with: compress verify {final}"
                      + (" --key PUBLIC.pem)" if cfg.ship.sign_key else ")"))
    return {"bundle": str(final), "variant": variant.name, "files": sorted(manifest.files),
            "signed": bool(cfg.ship.sign_key)}


def label_names(cfg, config: dict) -> dict[str, str]:
    """Class index (as a string) -> name; transformers' LABEL_<i> where the model config names none."""
    named = {str(k): v for k, v in config.get("id2label", {}).items()}
    return named or {str(i): f"LABEL_{i}" for i in range(cfg.teacher.num_labels)}


def golden_set(cfg, bundle: Path, labels: dict[str, str]) -> dict:
    """Real evaluation sentences, their ids from the bundled ``tokenizer.json`` (the ``tokenizers`` library, as a
    device runs it) and the logits the bundled ``model.onnx`` gives them one sentence at a time. The ids are
    checked against the transformers tokenizer the model was evaluated with: the bundle must reproduce them."""
    import onnxruntime
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    split = eval_split(cfg)
    picked = [(t, label) for t, label in zip(split.texts, split.labels) if t.strip()][: cfg.ship.golden_samples]
    reference = AutoTokenizer.from_pretrained(bundle)
    max_length = min(reference.model_max_length, 512)  # the truncation bench measured accuracy with
    tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    configure_tokenizer(tokenizer, max_length)
    sess = onnxrun.session(bundle / ONNX_FILE)
    samples = []
    for i, (text, label) in enumerate(picked):
        enc = tokenizer.encode(text)
        expected = reference(text, truncation=True, max_length=max_length)["input_ids"]
        if enc.ids != expected:
            raise CompressError(f"ship: the bundled tokenizer.json gives other ids than the model was evaluated with for "
                                f"evaluation sentence {i} ({text[:60]!r}): {enc.ids[:12]} vs {expected[:12]}")
        ids, mask = np.asarray([enc.ids], dtype=np.int64), np.asarray([enc.attention_mask], dtype=np.int64)
        logits = sess.run(["logits"], onnxrun.feeds(sess, ids, mask))[0][0]
        samples.append({"text": text, "label": label, "label_name": labels.get(str(label), str(label)),
                        "input_ids": enc.ids, "attention_mask": enc.attention_mask,
                        "logits": [float(x) for x in logits],
                        "predicted": labels.get(str(int(logits.argmax())), str(int(logits.argmax())))})
    return {
        "about": "Evaluation sentences with the ids tokenizer.json gives them and the logits model.onnx gives them, "
                 "one sentence per run, unpadded, token_type_ids zero. compress verify replays them.",
        "tokenizer": {"file": "tokenizer.json", "add_special_tokens": True, "truncation_max_length": max_length},
        "output": "logits",
        "atol": TOLERANCE["logits"],  # for readers: compress verify holds the logits to its own, the same
        "computed_with": {"model": ONNX_FILE, "onnxruntime": onnxruntime.__version__, "provider": "CPUExecutionProvider"},
        "samples": samples,
    }


def configure_tokenizer(tokenizer, max_length: int) -> None:
    """How a bundle's tokenizer.json is run: one sentence, truncated to ``max_length``, no padding."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)


def mobile_figures(variant: records.Variant) -> list[str]:
    """The model card's line on the mobile target (one thread, batch 1), where the bench measured it there."""
    mobile = [m for key, m in variant.measurements.items() if key.startswith("mobile@")]
    if not mobile:
        return []
    return ["- one thread, batch 1 (the bench's mobile target, `" + mobile[0].get("model_file") + "`): p50 "
            + ", ".join(f"{m.latency_ms.p50:.2f} ms at length {m.sequence_length}{rounds.tag(m.flags)}" for m in mobile)]


def deployed_figures(variant: records.Variant) -> list[str]:
    """The model card's line on the accuracy one sentence at a time, unpadded, where the bench measured it."""
    if variant.accuracy_batch1 is None:
        return []
    return [f"- run one sentence at a time, unpadded, as a device runs it: accuracy {variant.accuracy_batch1:.4f}, "
            f"{variant.retention_batch1:.1%} of the teacher's (the figure retention targets are judged on)"]


def model_card(cfg, report: records.Report, variant: records.Variant, spec: dict, labels: dict, golden: dict,
               mobile_summary: dict) -> str:
    lat = variant.latency_ms
    evaluation, target = report.get("eval"), report.get("target")
    inputs = ", ".join(f"`{t['name']}` {t['dtype']} {_shape(t)}" for t in spec["inputs"])
    outputs = ", ".join(f"`{t['name']}` {t['dtype']} {_shape(t)}" for t in spec["outputs"])
    files = "`model.onnx`" + (", `model.ort` (ORT format, for ONNX Runtime Mobile)" if mobile_summary["enabled"] else "")
    lines = [
        f"# {cfg.name}",
        "",
        f"A {_count(variant.parameters)}-parameter {cfg.task} student distilled from "
        f"`{cfg.teacher.model or 'a random teacher'}` by compress {__version__} (T={cfg.distill.temperature}, "
        f"alpha={cfg.distill.alpha}), exported to ONNX, {variant.precision}. Labels: "
        + ", ".join(f"{k} = {v}" for k, v in labels.items()) + ".",
        "",
        f"- accuracy {variant.accuracy:.4f} on {evaluation['sentences']} `{evaluation['split']}` sentences, "
        f"{variant.retention:.1%} of the teacher's",
        *deployed_figures(variant),
        f"- {speed_figure(variant, report)}, p50 {lat.p50:.2f} ms at batch "
        f"{target['batch_size']}, length {target['sequence_length']}, {target['threads']} CPU threads",
        *speed_warning(variant, report),
        *mobile_figures(variant),
        f"- {variant.size_bytes / 1e6:.1f} MB on disk",
        "",
        "## Files",
        "",
        f"{files}, the tokenizer (`tokenizer.json` and its configuration), `golden.json` ({len(golden['samples'])} "
        "evaluation sentences with their token ids and expected logits) and `manifest.json` (sha256 and size of every "
        "file, input/output spec, labels, figures).",
        "",
        f"Inputs: {inputs}. Outputs: {outputs}. Token ids come from `tokenizer.json`, one sentence truncated to "
        f"{golden['tokenizer']['truncation_max_length']} tokens with special tokens added; `token_type_ids` are zeros.",
        "",
        "## Run it",
        "",
        "With `pip install onnxruntime tokenizers numpy`, in this folder:",
        "",
        "```python",
        *usage_example(spec, golden),
        "```",
        "",
    ]
    if mobile_summary["enabled"]:
        eps = "; ".join(f"{ep['name']}: {ep['partitions']} partitions, {ep['supported_nodes']}/{ep['nodes']} nodes"
                        for ep in mobile_summary["execution_providers"].values())
        lines += [
            f"On Android/iOS load `model.ort` with ONNX Runtime Mobile (onnxruntime-android, onnxruntime-objc/-c) the "
            f"same way (optimization level {mobile_summary['optimization_level']}, {mobile_summary['optimization_style']}, "
            f"for {mobile_summary['target_platform']}). ONNX Runtime's usability check: {eps}; "
            + ("NNAPI or CoreML may help, compare them with the CPU execution provider."
               if mobile_summary["try_nnapi_or_coreml"] else "use the CPU execution provider."),
            "",
        ]
    lines += [
        "## Verify it",
        "",
        "`compress verify <this folder>` checks every file against `manifest.json`, tokenizes the golden sentences with "
        "`tokenizer.json`, runs them through `model.onnx`" + (" and `model.ort`" if mobile_summary["enabled"] else "")
        + f" and compares the logits with `golden.json` (tolerance {golden['atol']:g}, fixed by compress verify). It "
        "needs neither torch nor transformers.",
        "",
        *signed_line(cfg),
    ]
    return "\n".join(lines)


def signed_line(cfg) -> list[str]:
    """The model card's line on the signature, when the ship stage signs the bundle."""
    if not cfg.ship.sign_key:
        return []
    return [f"The bundle is signed (`{SIGNATURE_FILE}`, the OpenSSF model-signing format, every other file covered): "
            "`compress verify <this folder> --key public.pem` checks that it was signed by the holder of the private "
            "key.", ""]


def speed_figure(variant: records.Variant, report: records.Report) -> str:
    """``2.31x the teacher's speed (PyTorch fp32; 2.10-2.52x in 3 rounds)`` and its flags: the speedup as the model
    card writes it."""
    text = f"{variant.speedup:.2f}x the teacher's speed (PyTorch fp32"
    if variant.speedup_range and report.latency_rounds:
        lo, hi = variant.speedup_range
        text += f"; {lo:.2f}-{hi:.2f}x in {report.latency_rounds.rounds} rounds"
    return text + ")" + rounds.tag(variant.speedup_flags)


def speed_warning(variant: records.Variant, report: records.Report) -> list[str]:
    """The model card's line under a flagged speedup: what is flagged, so that nobody quotes the figure bare."""
    if not variant.speedup_flags:
        return []
    why = rounds.flagged_lines([v for v in report.variants if v.name in (variant.name, report.reference)],
                               report.latency_rounds.noise_tolerance if report.latency_rounds else None)
    return ["  - flagged, do not quote this speedup without its flag: " + "; ".join(why)]


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 100_000 else f"{n:,}"


def _shape(t: dict) -> str:
    return "[" + ", ".join(str(d) for d in t["shape"]) + "]"


def usage_example(spec: dict, golden: dict) -> list[str]:
    """About ten lines of Python that run the bundle on a golden sentence with onnxruntime and tokenizers alone."""
    sample = golden["samples"][0]
    max_length = golden["tokenizer"]["truncation_max_length"]
    feeds = {"input_ids": "enc.ids", "attention_mask": "enc.attention_mask", "token_type_ids": "enc.type_ids"}
    names = [t["name"] for t in spec["inputs"]]
    unknown = [n for n in names if n not in feeds]
    if unknown:
        raise CompressError(f"ship: model input {unknown[0]!r} is not one of {', '.join(feeds)}; cannot write the model card")
    return [
        "import json",
        "import numpy as np",
        "import onnxruntime as ort",
        "from tokenizers import Tokenizer",
        "",
        'tokenizer = Tokenizer.from_file("tokenizer.json")',
        f"tokenizer.enable_truncation(max_length={max_length})",
        'session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])',
        f"enc = tokenizer.encode({sample['text']!r})",
        "feeds = {" + ", ".join(f'"{n}": np.array([{feeds[n]}], dtype=np.int64)' for n in names) + "}",
        'logits = session.run(["logits"], feeds)[0]',
        'print(json.load(open("manifest.json"))["labels"][str(int(logits.argmax()))], logits)',
    ]
