"""The config models of what follows training: export, ONNX graph optimization, quantization (with the constants
of its methods), mobile, bench, report and ship."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from compress.config.base import StrictModel


class ExportConfig(StrictModel):
    """ONNX export through optimum-onnx, checked against PyTorch on real evaluation inputs."""

    opset: int | None = Field(None, ge=11, description="ONNX opset; null = optimum's default for the architecture. "
                              "Checked at load against the installed exporter: 14 (the lowest that exports "
                              "transformers' attention) to torch's highest (23 with torch 2.13).")
    atol: float = Field(1e-4, gt=0, description="Largest allowed |logit difference| between ONNX Runtime and PyTorch.")
    parity_samples: int = Field(32, gt=0, description="Evaluation sentences used for the parity checks (every "
                                "transformation is compared with PyTorch on them at several shapes).")
    greedy_prompts: int = Field(5, gt=0, description="task causal-lm: held-out prompts whose greedy tokens through "
                                "ONNX Runtime (with the KV cache) must equal PyTorch's generate, or the run fails.")
    greedy_tokens: int = Field(32, gt=0, description="task causal-lm: tokens generated per greedy prompt.")
    teacher: bool = Field(True, description="task causal-lm: export the teacher too (teacher-onnx, measured beside "
                          "the students); false saves the time and disk of a large teacher, which is then measured "
                          "in PyTorch only.")


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


QuantMethod = Literal["onnx_dynamic", "onnx_static", "onnx_int4", "fp16", "torch_dynamic", "bnb_int8", "bnb_nf4"]
ONNX_INT8 = ("onnx_dynamic", "onnx_static")  # quantized with ONNX Runtime, walked down the fallback ladder
ONNX_METHODS = (*ONNX_INT8, "onnx_int4", "fp16")  # produce an .onnx file: shippable
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
    method: QuantMethod = Field(description="onnx_dynamic / onnx_static: ONNX Runtime int8 (CPU); onnx_int4: "
                                "weight-only int4 of a decoder's blocks (ONNX Runtime's MatMulNBits; task causal-lm), its "
                                "output layer int8, its word embeddings int4; fp16: ONNX float16 (GPU); torch_dynamic: PyTorch "
                                "int8 nn.Linear (CPU); bnb_int8 / bnb_nf4: bitsandbytes (CUDA, never exported to ONNX).")
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

    block_size: int | None = Field(None, ge=16, description="onnx_int4: weights along a MatMul's input dimension "
                                   "(and embedding values along the width) that share one scale, a power of two >= 16 "
                                   "(null = 32).")
    symmetric: bool | None = Field(None, description="onnx_int4: symmetric 4-bit blocks (no zero points; -8..7 x scale) "
                                   "instead of a 4-bit zero point per block (null = false: asymmetric).")
    accuracy_level: Literal[0, 1, 2, 3, 4] | None = Field(
        None, description="onnx_int4: what MatMulNBits computes in on CPU: 4 = int8 activations x int4 weights (ONNX "
        "Runtime's fastest CPU path), 1 = fp32, 2 = fp16, 3 = bf16, 0 = unset (ONNX Runtime's default) (null = 4).")

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
        for key in ("block_size", "symmetric", "accuracy_level"):
            if getattr(self, key) is not None and self.method != "onnx_int4":
                stray.insert(0, key)
        if stray:
            only = {"calibration": "onnx_static", "embeddings": "onnx_dynamic", "embedding_block": "onnx_dynamic",
                    "block_size": "onnx_int4", "symmetric": "onnx_int4", "accuracy_level": "onnx_int4"}.get(
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
        if self.block_size is not None and self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size: {self.block_size} is not a power of two (16, 32, 64, 128, ...)")
        if self.method == "onnx_int4":
            self.block_size = self.block_size or 32
            self.symmetric = bool(self.symmetric)
            self.accuracy_level = 4 if self.accuracy_level is None else self.accuracy_level
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
    queries: int = Field(100, ge=10, description="Least timed queries of each round of a measurement; p50/p90/p99 "
                         "are taken over all timed ones of the round.")
    min_seconds: float = Field(2.0, ge=0, description="Keep timing queries until this many seconds have passed (after "
                               "bench.queries), in each round of a measurement. Longer gives steadier percentiles and a "
                               "slower bench stage (MLPerf-like runs use 10); 0 = exactly bench.queries.")
    rounds: int = Field(3, ge=2, le=50, description="Interleaved rounds of the latency measurements: round r "
                        "measures every variant on every target case once, in order (each in a fresh process), then "
                        "round r+1; a p50 is the median of the rounds' p50s, its spread their min-max. At least 2: one "
                        "round cannot tell noise from a figure. The bench stage takes about rounds times as long.")
    noise_tolerance: float = Field(0.25, gt=0, description="A measurement whose rounds' p50s differ by more than this "
                                   "share of their median ((max - min) / median) is flagged noisy, and so is every "
                                   "speedup against it (terminal, report.md, report.html, the model card).")
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
    sign_key: str | None = Field(None, description="A PEM elliptic-curve private key (P-256, P-384 or P-521): the "
                                 "bundle is signed with it in the OpenSSF model-signing format (model.sig; needs "
                                 "pip install 'compress[sign]'), checked with compress verify BUNDLE --key PUBLIC.pem. "
                                 "null: not signed.")

    @model_validator(mode="before")
    @classmethod
    def _tolerance_is_the_verifiers(cls, data: Any) -> Any:
        if isinstance(data, dict) and "golden_atol" in data:
            raise ValueError("ship.golden_atol: no longer a setting; compress verify holds golden outputs to a "
                             "tolerance fixed in its code for each task (docs/export-quantization.md), never to one "
                             "written in a bundle: remove the key")
        return data


class ReportConfig(StrictModel):
    """What report.md / report.html recommend."""

    retention_floor: float = Field(0.97, gt=0, le=1, description="The recommended variants are the smallest and the "
                                   "fastest whose accuracy is at least this share of the teacher's (0.97 = 97%).")
