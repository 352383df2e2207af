"""What a classification run refuses at load, and what it checks before it writes anything."""

from __future__ import annotations

from pathlib import Path

from compress import models
from compress import preflight as checks
from compress.config import PipelineConfig, is_local_path, shapes
from compress.data import refusals as data_refusals



def _lengths(cfg: PipelineConfig) -> dict[str, int]:
    """The lengths a classifier reads in one sequence: training, and the bench's queries."""
    return {"data.max_length": cfg.data.max_length, "bench.sequence_length": cfg.bench.sequence_length,
            "bench.mobile_sequence_lengths": max(cfg.bench.mobile_sequence_lengths)}


# What compress.config.shapes checks at load: the architectures compress builds classifier students of, the
# random teacher as the teacher stage builds it, with a stand-in vocabulary size (the real one is trained on the data
# later; no shape checked here depends on it).
FAMILY = shapes.Family(
    architectures={t: shapes.Sizes(s.count, s.width, s.heads, s.ffn, bool(s.ffn_in)) for t, s in models.LAYERS.items()},
    random_config=lambda cfg: models.random_config(cfg.teacher, 128, 0, cfg.data.max_length),
    lengths=_lengths,
    position_rule="max(512, data.max_length)",
)


def refuse(cfg: PipelineConfig) -> list[str]:
    """Settings no classifier can use, one line each with the reason (validate and run refuse them alike)."""
    problems = []
    src = cfg.data.source
    if src != "generated" and is_local_path(src) and not Path(src).expanduser().is_dir():
        problems.append(f"data.source: folder not found: {src} (a folder of <split>.tsv/.csv/.jsonl files, a hub id, "
                        "or 'generated')")
    problems += data_refusals(cfg.data)
    if cfg.data.labels is not None and len(cfg.data.labels) != cfg.teacher.num_labels:
        problems.append(f"data.labels: {len(cfg.data.labels)} names ({', '.join(cfg.data.labels)}), but "
                        f"teacher.num_labels is {cfg.teacher.num_labels}; give one name per class")
    if cfg.distill.sequence.mode != "off":
        problems.append(f"distill.sequence.mode: {cfg.distill.sequence.mode}: sequence-level distillation is for "
                        "task: causal-lm (a classifier generates no text); set it to off")
    if cfg.student.method == "layers" and cfg.student.num_layers is not None:
        problems.append("student.num_layers: ranking a classifier's layers is not offered (it is for task: causal-lm); "
                        "list them in student.layers, or use student.method: config")
    if cfg.scores.enabled:
        problems.append("scores.enabled: the zero-shot scores (WikiText-2, LAMBADA, HellaSwag, PIQA, ARC-Easy) are "
                        "for task: causal-lm; a classifier is scored by accuracy on data.eval_split: set it to false")
    for i, v in enumerate(cfg.quantize.variants):
        if v.method == "onnx_int4":
            problems.append(f"quantize.variants.{i}.method: onnx_int4 is the int4 of a decoder's blocks (task "
                            "causal-lm); for a classifier use onnx_dynamic with embeddings: int4 (int4 word "
                            "embeddings, int8 layers) or onnx_static")
    return problems + shapes.check(cfg, FAMILY)


def check_models(cfg: PipelineConfig) -> None:
    """The model folders the config names, the teacher's head against teacher.num_labels."""
    checks.check_models(cfg, num_labels=cfg.teacher.num_labels)


def check_data(cfg: PipelineConfig, console) -> dict:
    """Every split the run reads, read as the stages read them: columns, labels, empty splits raise naming the
    file; doubtful data is warned about (compress validate and the preflight)."""
    return checks.check_data(cfg, console)


def preflight(cfg: PipelineConfig, console, device: str) -> dict:
    """The labelled data (every split the run reads), the model folders, and whether training fits in memory."""
    data = check_data(cfg, console)
    check_models(cfg)
    memory = checks.check_memory(cfg, data["train_rows"], console, device)
    return {"data": data, "memory": memory}
