"""Where everything lives: the one place that names the files and folders of a run (``runs/<name>/``) and of an
edge bundle (``exports/<name>/``). Stages, commands and benchmarks ask a layout for a path; none spells a file
name of another module.

    runs/<name>/
      config.yaml  env.json  plan.json  preflight.json  .lock  .checkpoints/<stage>-<hash>/
      <stage>/stage.json                     every stage: status, inputs hash, metrics, sha256 of its files
      teacher/model  student/model  distill/model  refine/model  trim/model     transformers folders
      baseline/student-ce                    the same student on hard labels only
      export/<teacher|student>/model.onnx    (+ model_optimized.onnx, parity.npz)
      quantize/<variant>/model.onnx          (+ variants.json: what the stage produced)
      mobile/model.ort                       bench/results.json
      report.json  report.md  report.html    (a sweep: points/<point>/, sweep.json, sweep.md, sweep.html)
    <runs-dir>/.cache/teacher-outputs/       the teacher-output cache, shared by the runs of one folder
    exports/<name>/
      model.onnx  model.ort  tokenizer files  golden.json  README.md  manifest.json
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# ----------------------------------------------------------------------------- a run folder
CONFIG_FILE = "config.yaml"
ENV_FILE = "env.json"
PLAN_FILE = "plan.json"
PREFLIGHT_FILE = "preflight.json"
LOCK_FILE = ".lock"
CHECKPOINTS_DIR = ".checkpoints"
CACHE_DIR = ".cache"
TEACHER_CACHE_DIR = "teacher-outputs"
STAGE_FILE = "stage.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
POINTS_DIR = "points"
SWEEP_JSON, SWEEP_MD, SWEEP_HTML = "sweep.json", "sweep.md", "sweep.html"

MODEL_DIR = "model"  # a transformers folder (config, safetensors weights, tokenizer)
BASELINE_MODEL = "student-ce"  # the baseline stage's student trained on hard labels only
ONNX_FILE = "model.onnx"
FUSED_FILE = "model_optimized.onnx"  # the export after ONNX Runtime's transformer optimizer
PARITY_FILE = "parity.npz"  # the export's parity inputs and PyTorch outputs, which later stages replay
VARIANTS_FILE = "variants.json"  # the quantize stage's list of what it produced
RESULTS_FILE = "results.json"  # the bench stage's measurements
ORT_FILE = "model.ort"
OPERATORS_FILE = "required_operators.config"

# ----------------------------------------------------------------------------- a bundle
MANIFEST_FILE = "manifest.json"
GOLDEN_FILE = "golden.json"
CARD_FILE = "README.md"
SIGNATURE_FILE = "model.sig"  # model-signing's default name; signs every other file (compress/signing.py)
CHAT_TEMPLATE_FILE = "chat_template.jinja"  # where transformers >= 4.57 saves a tokenizer's chat template
MODEL_FILES = (ONNX_FILE, ORT_FILE)  # the model files a bundle may hold, replayed in this order
ENCODER_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                           "config.json")
DECODER_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                           "merges.txt", "config.json", "generation_config.json", CHAT_TEMPLATE_FILE)


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder. Stage folders are named by the stage; the files in them by this module."""

    root: Path

    def stage(self, name: str) -> Path:
        return self.root / name

    def record(self, stage: str) -> Path:
        return self.root / stage / STAGE_FILE

    def model(self, stage: str) -> Path:
        """The transformers folder a training stage wrote (teacher, student, distill, refine, trim)."""
        return self.root / stage / MODEL_DIR

    def checkpoint(self, stage: str, inputs_hash: str) -> Path:
        return self.root / CHECKPOINTS_DIR / f"{stage}-{inputs_hash}"

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def env(self) -> Path:
        return self.root / ENV_FILE

    @property
    def plan(self) -> Path:
        return self.root / PLAN_FILE

    @property
    def preflight(self) -> Path:
        return self.root / PREFLIGHT_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def report_json(self) -> Path:
        return self.root / REPORT_JSON

    @property
    def report_md(self) -> Path:
        return self.root / REPORT_MD

    @property
    def report_html(self) -> Path:
        return self.root / REPORT_HTML

    @property
    def baseline_model(self) -> Path:
        return self.root / "baseline" / BASELINE_MODEL

    @property
    def bench_results(self) -> Path:
        return self.root / "bench" / RESULTS_FILE

    @property
    def score_results(self) -> Path:
        return self.root / "score" / RESULTS_FILE

    @property
    def variants_file(self) -> Path:
        return self.root / "quantize" / VARIANTS_FILE

    @property
    def ort_model(self) -> Path:
        return self.root / "mobile" / ORT_FILE

    def export_dir(self, model: str) -> Path:
        """export/<teacher|student>/: the ONNX export of that model, its tokenizer and parity inputs."""
        return self.root / "export" / model

    def export_onnx(self, model: str) -> Path:
        """The ONNX graph of ``model`` that later stages use: the fused one when the export optimized it."""
        folder = self.export_dir(model)
        return folder / FUSED_FILE if (folder / FUSED_FILE).is_file() else folder / ONNX_FILE

    def quantized(self, variant: str) -> Path:
        return self.root / "quantize" / variant / ONNX_FILE

    def onnx_variant(self, variant: str) -> Path:
        """The .onnx of a shippable variant: ``student-onnx`` (the fp32 export) or a quantized one."""
        return self.export_onnx("student") if variant == "student-onnx" else self.quantized(variant)

    def distilled_student(self) -> Path:
        """The student after distillation: refined when the refine stage made one, else as distill left it."""
        refined = self.model("refine")
        return refined if refined.is_dir() else self.model("distill")

    def final_student(self) -> Path:
        """The student that is exported and shipped: trimmed when the trim stage made one, else distilled."""
        trimmed = self.model("trim")
        return trimmed if trimmed.is_dir() else self.distilled_student()


def teacher_cache(runs_dir: Path) -> Path:
    """The teacher-output cache every run under ``runs_dir`` shares (a sweep's points read one teacher's outputs)."""
    return runs_dir / CACHE_DIR / TEACHER_CACHE_DIR


@dataclass(frozen=True)
class BundleLayout:
    """The paths of an edge bundle, ``exports/<name>/``."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_FILE


def bundle_dir(ship_dir: str | Path, name: str) -> BundleLayout:
    return BundleLayout(Path(ship_dir) / name)
