"""Rules across keys: settings that validate one by one but cannot work together, and the files,
folders and packages a config names, checked without loading anything. Each problem is one line that
names its key and says why."""

from __future__ import annotations

from pathlib import Path

from compress.config import packages
from compress.config.base import PACKAGE_PREFIX
from compress.config.deploy import BNB_METHODS, BUILTIN_VARIANTS, GPU_METHODS, ONNX_INT8, ONNX_METHODS
from compress.config.keys import key_problem
from compress.config.packages import install_hint, package_name
from compress.config.paths import is_windows_path, windows_problem
from compress.config.schema import PipelineConfig
from compress.errors import ConfigError


def check_combinations(cfg: PipelineConfig) -> list[str]:
    """Settings that validate one by one but cannot work together: one line each, with the reason."""
    problems = []
    targets = set(cfg.targets)
    names = [v.name for v in cfg.quantize.variants]
    for i, v in enumerate(cfg.quantize.variants):
        key = f"quantize.variants.{i}"
        if names.count(v.name) > 1 and names.index(v.name) != i:
            problems.append(f"{key}.name: {v.name} is listed twice; every variant needs its own name")
        if v.name in BUILTIN_VARIANTS:
            problems.append(f"{key}.name: {v.name} is a variant every run makes; pick another name "
                            f"(taken: {', '.join(BUILTIN_VARIANTS)})")
        if v.method in BNB_METHODS and "gpu" not in targets:
            problems.append(f"{key}.method: {v.method} needs a CUDA GPU (bitsandbytes has no CPU kernels), but targets "
                            f"is {cfg.targets}; add gpu to targets or use onnx_dynamic")
        if v.method == "fp16" and "gpu" not in targets:
            problems.append(f"{key}.method: fp16 on a CPU target: ONNX Runtime's CPU kernels mostly compute float16 "
                            f"by casting to fp32, so it runs slower than fp32 and is twice the size of int8; "
                            f"targets is {cfg.targets} (add gpu, or use onnx_dynamic / onnx_static)")
        if v.method in ONNX_INT8 and not targets & {"cpu", "mobile"}:
            problems.append(f"{key}.method: {v.method} makes int8 kernels for CPUs, but targets is {cfg.targets}; "
                            f"add cpu or mobile to targets, or use fp16 for a GPU")
        if v.method in GPU_METHODS and "gpu" in targets and "gpu" not in cfg.bench.targets:
            problems.append(f"{key}.method: {v.method} runs on CUDA, but bench.targets is {cfg.bench.targets}; "
                            f"add gpu to bench.targets so it is measured")
        if v.method == "torch_dynamic" and "cpu" not in targets:
            problems.append(f"{key}.method: torch_dynamic runs PyTorch's int8 CPU kernels, but targets is "
                            f"{cfg.targets}; add cpu to targets")
        if v.method == "onnx_static":
            samples, limit = v.calibration.samples, cfg.data.max_train_samples
            if samples == 0:
                problems.append(f"{key}.calibration.samples: 0; static quantization needs calibration data "
                                f"(training sentences to measure activation ranges, e.g. 128), or use onnx_dynamic")
            elif limit is not None and samples > limit:
                problems.append(f"{key}.calibration.samples: {samples} calibration sentences, but "
                                f"data.max_train_samples keeps only {limit} training rows")
            elif cfg.data.source == "generated" and samples > cfg.data.generated_size:
                problems.append(f"{key}.calibration.samples: {samples} calibration sentences, but "
                                f"data.generated_size makes only {cfg.data.generated_size} training rows")
    problems += _check_ship(cfg)
    problems += _check_refine(cfg)
    return problems  # the lengths against the model's position table: compress.config.shapes


def _check_refine(cfg: PipelineConfig) -> list[str]:
    """refine prunes what the student stage left: refused at load when that cannot work (before any training)."""
    r, st = cfg.refine, cfg.student
    if not r.enabled:
        return []
    problems = []
    if r.num_attention_heads is not None and st.num_attention_heads is not None:
        problems.append(f"refine.num_attention_heads: the student's heads are pruned already (student.num_attention_heads "
                        f"{st.num_attention_heads}); prune them in one place: set one of the two to null")
    if r.intermediate_size is not None and st.intermediate_size is not None and r.intermediate_size > st.intermediate_size:
        problems.append(f"refine.intermediate_size: {r.intermediate_size} is wider than the student's feed-forward "
                        f"(student.intermediate_size {st.intermediate_size}); pruning can only keep fewer neurons")
    return problems


def _check_ship(cfg: PipelineConfig) -> list[str]:
    """ship.variant must name an ONNX model this run produces (the bundle ships it; the mobile stage converts it)."""
    if not (cfg.ship.enabled or cfg.mobile.enabled) or cfg.ship.variant == "student-onnx":
        return []
    name = cfg.ship.variant
    listed = {v.name: v for v in cfg.quantize.variants}
    shippable = ["student-onnx", *(v.name for v in cfg.quantize.variants if v.method in ONNX_METHODS)]
    if name == "student-int8" and not cfg.quantize.enabled:
        return ["ship.variant: student-int8 needs quantize.enabled: true (or ship student-onnx)"]
    if name not in listed:
        return [f"ship.variant: {name} is not produced by this run; valid: {', '.join(shippable)}"]
    if not cfg.quantize.enabled:
        return [f"ship.variant: {name} needs quantize.enabled: true (or ship student-onnx)"]
    method = listed[name].method
    if method in BNB_METHODS:
        return [f"ship.variant: {name} is a {method} variant: bitsandbytes models live in PyTorch on CUDA and are never "
                f"exported to ONNX; ship one of {', '.join(shippable)}"]
    if method not in ONNX_METHODS:
        return [f"ship.variant: {name} is a {method} variant (a PyTorch model); the bundle ships ONNX: "
                f"ship one of {', '.join(shippable)}"]
    return []


def is_local_path(text: str) -> bool:
    """A source is a local path when it exists or is spelled like one (./, ../, /, ~)."""
    if text.startswith((".", "/", "~")):
        return True
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError):  # a name longer than the file system allows, a NUL byte: not a path here
        return False


def check_sources(cfg: PipelineConfig) -> list[str]:
    """Problems with files, folders and packages the config names, found without loading anything (and without
    running a package's code): a Windows path on POSIX, a string that is neither a local path nor a possible hub
    id, a package that is not installed or holds no model, a model folder that is not there."""
    problems = []
    src = cfg.data.source  # whether it must be a folder or may be a file is the task's to say (its rules)
    if src != "generated":
        problems += _source_problems("data.source", src, "dataset")
    static = next((i for i, v in enumerate(cfg.quantize.variants) if v.method == "onnx_static"), None)
    if not problems and cfg.quantize.enabled and static is not None and src != "generated" and is_local_path(src):
        rows = count_local_rows(Path(src).expanduser(), cfg.data.train_split, header=cfg.data.columns is None)
        samples = cfg.quantize.variants[static].calibration.samples
        if rows == 0:
            problems.append(f"quantize.variants.{static}: onnx_static calibrates on the training split, but split "
                            f"'{cfg.data.train_split}' of {src} has no rows")
        elif rows is not None and samples > rows:
            problems.append(f"quantize.variants.{static}.calibration.samples: {samples} calibration sentences, but "
                            f"split '{cfg.data.train_split}' of {src} has only {rows} rows")
    if cfg.teacher.model:
        problems += _model_problems("teacher.model", cfg.teacher.model)
    if cfg.student.method == "pretrained" and cfg.student.model:
        problems += _model_problems("student.model", cfg.student.model)
    if cfg.ship.enabled and cfg.ship.sign_key is not None:
        problem = key_problem(cfg.ship.sign_key, private=True)
        if problem:
            problems.append(f"ship.sign_key: {problem}")
    return problems


def _source_problems(key: str, spec: str, kind: str) -> list[str]:
    """A source that is not local must at least be spelled as a hub id (huggingface_hub's own rule)."""
    if is_windows_path(spec):
        return [windows_problem(key, spec)]
    if is_local_path(spec) or spec.startswith(PACKAGE_PREFIX):
        return []
    problem = hub_id_problem(spec)
    if problem:
        return [f"{key}: '{spec}' is not a {'folder' if kind == 'model' else 'file or folder'} here, and cannot be a "
                f"hub {kind} id ({problem}); give a local path (./data, /data) or an id such as "
                f"{'org/model' if kind == 'model' else 'glue or org/dataset'}"]
    return []


def hub_id_problem(text: str) -> str | None:
    """Why ``text`` cannot be a Hugging Face hub repository id (huggingface_hub.utils.validate_repo_id), or None."""
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id
    except ImportError:  # without huggingface_hub the hub is out of reach anyway
        return None
    try:
        validate_repo_id(text)
    except HFValidationError as exc:
        return str(exc).strip().splitlines()[0].rstrip(".")
    return None


def _model_problems(key: str, spec: str) -> list[str]:
    name = package_name(spec)
    if name is not None:
        if not packages.installed(name):
            return [f"{key}: Python package '{name}' is not installed ({install_hint(name)})"]
        try:
            packages.package_model(spec, key)
        except ConfigError as exc:
            return exc.problems
        return []
    problems = _source_problems(key, spec, "model")
    if problems:
        return problems
    if is_local_path(spec) and not Path(spec).expanduser().is_dir() and gguf_file(spec) is None:
        return [f"{key}: folder not found: {spec} (a model folder, a .gguf file, a hub id or package:<name>)"]
    return []


def count_local_rows(folder: Path, split: str, header: bool = True) -> int | None:
    """Data rows in ``<folder>/<split>.tsv/.csv/.jsonl`` (None when there is no such file, or it is .json),
    counted as lines without parsing: enough to tell an empty split from a usable one. ``header``: the .tsv/.csv
    file's first line is its header (not with data.columns)."""
    for suffix, skip in ((".tsv", int(header)), (".csv", int(header)), (".jsonl", 0)):
        path = folder / f"{split}{suffix}"
        if path.is_file():
            with open(path, "rb") as fh:
                lines = sum(1 for line in fh if line.strip())
            return max(lines - skip, 0)
    return None


def gguf_file(spec: str) -> Path | None:
    """The GGUF file a model source names: a path to a .gguf file, or ``package:<name>`` whose installed folder
    holds exactly one (found without importing the package: compress.config.packages). None for any other source.
    transformers reads a GGUF file as a float model (the gguf package)."""
    name = package_name(spec)
    if name is not None:
        return packages.package_gguf(name)
    path = Path(spec).expanduser()
    return path if path.suffix == ".gguf" and path.is_file() else None


def resolve_model_path(spec: str, key: str = "teacher.model") -> str:
    """``package:<name>`` -> the model folder it holds (or the folder of its one GGUF file), found without running
    its code (compress.config.packages); a local path expanded; anything else (a hub id) unchanged."""
    if package_name(spec) is not None:
        found = packages.package_model(spec, key)
        return str(found.parent if found.suffix == ".gguf" else found)
    gguf = gguf_file(spec)
    if gguf is not None:
        return str(gguf.parent)
    return str(Path(spec).expanduser()) if is_local_path(spec) else spec
