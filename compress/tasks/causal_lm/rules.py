"""What a causal-LM run refuses at load (each with the reason), and what it checks before it writes anything."""

from __future__ import annotations

from pathlib import Path

from compress import models
from compress import preflight as checks
from compress.config import PipelineConfig, is_local_path, shapes
from compress.data import refusals as data_refusals
from compress.tasks.causal_lm import lm
from compress.tasks.causal_lm.text import load_text
from compress.tasks.causal_lm.zeroshot import FILES

WHY = "task causal-lm"


def _lengths(cfg: PipelineConfig) -> dict[str, int]:
    """The lengths a decoder reads in one sequence: a training block, and a timed query's prompt with the tokens
    it generates after it."""
    return {"data.max_length": cfg.data.max_length,
            "bench.sequence_length + bench.new_tokens": cfg.bench.sequence_length + cfg.bench.new_tokens}


# What compress.config.shapes checks at load: the decoders compress builds students of, and the random teacher as
# the teacher stage builds it, with a stand-in vocabulary size (the real one, the BPE tokenizer's, is trained on the
# text later; no shape checked here depends on it).
FAMILY = shapes.Family(
    architectures={t: shapes.Sizes(s.count, s.width, s.heads, s.ffn, bool(s.ffn_in))
                   for t, s in models.DECODER_LAYERS.items()},
    random_config=lambda cfg: lm.random_config(cfg.teacher, lm.DEFAULT_VOCAB, {}, cfg.data.max_length),
    lengths=_lengths,
    position_keys=lm.POSITIONS,
    position_rule="max(2 x data.max_length, 256)",
)


def refuse(cfg: PipelineConfig) -> list[str]:
    """Settings made for classifiers, refused at load with the reason (no stage runs half of it)."""
    problems = []
    src = cfg.data.source
    if src != "generated" and is_local_path(src) and not Path(src).expanduser().exists():
        problems.append(f"data.source: not found: {src} (a text file, a folder of .txt files, a hub id, or 'generated')")
    problems += data_refusals(cfg.data, labelled=False)
    if cfg.data.columns is not None:
        problems.append(f"data.columns: names the columns of header-less .tsv/.csv files for classifiers; {WHY} reads "
                        "text files and JSON lines (set it to null)")
    if cfg.data.labels is not None:
        problems.append(f"data.labels: class names are for classifiers; {WHY} reads text without labels (set it to "
                        "null)")
    if cfg.vocab_trim.enabled:
        problems.append(f"vocab_trim.enabled: not for {WHY}: the vocabulary is the output layer of a language model, "
                        "trimming it changes what it can generate; set vocab_trim.enabled: false")
    if cfg.mobile.enabled:
        problems.append(f"mobile.enabled: not for {WHY}: the ORT-format conversion and its checks are made for "
                        "classifiers without a KV cache; set mobile.enabled: false (bench.targets mobile still "
                        "measures the ONNX decoder on one thread)")
    for i, v in enumerate(cfg.quantize.variants):
        if v.method not in ("onnx_dynamic", "onnx_int4"):
            problems.append(f"quantize.variants.{i}.method: {v.method} is not offered for {WHY}; use onnx_dynamic "
                            "(int8 weights of the ONNX decoder with its KV cache) or onnx_int4 (int4 weights)")
        elif v.method == "onnx_dynamic" and v.embeddings == "int4":
            problems.append(f"quantize.variants.{i}.embeddings: int4 is for classifiers' fused embedding layer; for "
                            f"{WHY} use method: onnx_int4 (int4 blocks and word embeddings, int8 output layer)")
        if v.method == "onnx_int4" and v.accuracy_level not in (0, 1, 4):
            problems.append(f"quantize.variants.{i}.accuracy_level: {v.accuracy_level} computes MatMulNBits in "
                            f"{'fp16' if v.accuracy_level == 2 else 'bf16'}, which ONNX Runtime's CPU kernels "
                            "emulate slowly; use 4 (int8 compute, the fast CPU path) or 1 (fp32)")
    if cfg.distill.hidden.weight > 0 or cfg.distill.attention_weight > 0:
        key = "distill.hidden.weight" if cfg.distill.hidden.weight > 0 else "distill.attention_weight"
        problems.append(f"{key}: intermediate-layer losses are not offered for {WHY}; the token-level loss on the "
                        "full next-token distributions is the signal (set it to 0)")
    if cfg.distill.augment.copies:
        problems.append(f"distill.augment.copies: word perturbations are for classifiers; for {WHY} use "
                        "distill.sequence.mode: mix (the teacher writes extra training text)")
    if cfg.student.architecture != "same":
        problems.append(f"student.architecture: {cfg.student.architecture} maps a BERT classifier; for {WHY} use same")
    if cfg.student.method == "layers" and cfg.student.num_attention_heads is not None:
        problems.append(f"student.num_attention_heads: pruning a decoder's heads is not offered for {WHY} (grouped "
                        "key-value heads); prune its feed-forward with student.intermediate_size, or use "
                        "student.method: config for fewer heads (or set it to null)")
    if cfg.student.method == "layers" and cfg.student.layers is not None and cfg.student.num_layers is not None:
        problems.append(f"student.num_layers: {cfg.student.num_layers} with student.layers {cfg.student.layers}: give "
                        "the layers to keep, or how many to keep ranked on the data, not both")
    if cfg.refine.enabled:
        problems.append(f"refine.enabled: pruning and distilling again is for classifiers; for {WHY} set it to false "
                        "and use student.method: config for a narrower student")
    if cfg.data.validation_split:
        problems.append(f"data.validation_split: per-epoch validation is for classifiers; for {WHY} the held-out text "
                        "is data.holdout_fraction of the text (or <eval_split>.txt in a folder); set it to null")
    if cfg.scores.enabled:
        problems += _score_files(cfg.scores)
    return problems + shapes.check(cfg, FAMILY)


def _score_files(scfg) -> list[str]:
    folder = Path(scfg.folder).expanduser()
    if not folder.is_dir():
        return [f"scores.folder: not a folder: {scfg.folder} (it holds the evaluation sets: "
                f"{', '.join(FILES.values())} and the WikiText-2 text)"]
    problems = [f"scores.sets.{name}: {folder / FILES[name]} not found" for name in scfg.sets
                if not (folder / FILES[name]).is_file()]
    if scfg.wikitext and not (folder / scfg.wikitext).is_file():
        problems.append(f"scores.wikitext: {folder / scfg.wikitext} not found (or set scores.wikitext: null)")
    return problems


def check_models(cfg: PipelineConfig) -> None:
    """The model folders the config names (a decoder has no classification head to check)."""
    checks.check_models(cfg)


def check_data(cfg: PipelineConfig, console) -> dict:
    """The text, read as the stages read it: found, UTF-8, long enough to hold some out (raises naming the file)."""
    text = load_text(cfg)
    return {"train_characters": len(text.train), "eval_characters": len(text.eval), "source": text.source}


def preflight(cfg: PipelineConfig, console, device: str) -> dict:
    """The model folders, then the text."""
    check_models(cfg)
    return {"data": check_data(cfg, console)}
