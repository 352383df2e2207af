"""Checks made before a run writes anything (each task's preflight hook picks the ones it needs): the labelled data,
the model files the config names, and whether training will fit in memory. Bad data and unsafe or damaged model
files raise CompressError (one line each, nothing written); doubtful data and a run that would not fit in memory
are warned about, with counts and the estimate, and the run goes on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from compress.config import PipelineConfig, gguf_file, is_local_path, resolve_model_path
from compress.data import eval_split, train_split, validation_split
from compress.errors import CompressError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
JSON_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "model.safetensors.index.json")
CHECKED_FILES = WEIGHT_FILES + PICKLE_FILES + JSON_FILES  # read here or by transformers: each must be a regular file
HEADS = ("classifier.weight", "classifier.out_proj.weight")  # BERT, DistilBERT / RoBERTa, ELECTRA heads
GiB = 2**30


def check_models(cfg: PipelineConfig, num_labels: int | None = None) -> None:
    """Every local model folder the config names (teacher.model, a pretrained student.model), without loading
    anything: also what `compress validate` checks. ``num_labels``: the teacher's head must have that many outputs
    (a classifier's task says so; None = no head to check). The shapes in its config.json (layers, heads, position
    table) are checked at load (compress.config.shapes)."""
    for key, spec, pickle_ok, remote_ok in _model_sources(cfg):
        if gguf_file(spec) is not None:
            continue  # one GGUF file: transformers reads it whole (no folder of weights to check)
        check_model_folder(Path(resolve_model_path(spec, key)), key, pickle_ok, remote_ok,
                           num_labels=num_labels if key == "teacher.model" else None)


def _warn(console, text: str) -> None:
    from rich.markup import escape

    console.print(f"[yellow]warning[/] {escape(text)}", soft_wrap=True)  # one line, however narrow the console


# ----------------------------------------------------------------------------- data


def check_data(cfg: PipelineConfig, console) -> dict:
    """Reads every split the run uses (a missing or misnamed column, an empty split, a label outside the label set
    (compress.labels) or text that is not UTF-8 raise, naming the file); warns about evaluation
    sentences that also appear in the training split, and about labels no training row has."""
    train, evals, val = train_split(cfg), eval_split(cfg), validation_split(cfg)
    summary = {"train_rows": len(train), "eval_rows": len(evals), **overlaps(train.texts, evals.texts, "eval")}
    if summary["eval_duplicates"]:
        _warn(console, f"data: {summary['eval_duplicates']} of {len(evals)} evaluation sentences "
                       f"({summary['eval_duplicates'] / len(evals):.1%}) also appear in the training split "
                       f"'{cfg.data.train_split}': accuracy on them is not held-out")
    if val is not None:
        summary.update(validation_rows=len(val), **overlaps(train.texts, val.texts, "validation"))
        if summary["validation_duplicates"]:
            _warn(console, f"data: {summary['validation_duplicates']} of {len(val)} validation sentences also appear "
                           f"in the training split '{cfg.data.train_split}': the best epoch is picked on seen text")
    n = cfg.teacher.num_labels
    unused = sorted(set(range(n)) - set(train.labels))
    summary["labels_in_train"] = len(set(train.labels))
    if train.names:
        summary["labels"] = list(train.names)
    if unused:
        shown = ", ".join(f"{i} ({train.names[i]})" if train.names else str(i) for i in unused)
        hint = f"; {train.label_set.hint}" if train.label_set and train.label_set.hint else ""
        _warn(console, f"data: teacher.num_labels is {n}, but no training row has label {shown} "
                       f"(the training split uses {summary['labels_in_train']} of {n} labels){hint}")
    return summary


def overlaps(train: list[str], other: list[str], name: str) -> dict:
    """How many rows of ``other`` have a text (whitespace-trimmed) that is also a training text."""
    seen = {t.strip() for t in train}
    return {f"{name}_duplicates": sum(t.strip() in seen for t in other)}


# ----------------------------------------------------------------------------- model files


def _model_sources(cfg: PipelineConfig) -> list[tuple[str, str, bool, bool]]:
    """(key, spec, allow_pickle, trust_remote_code) of every local model folder the config names."""
    out = []
    t, s = cfg.teacher, cfg.student
    if t.model and (t.model.startswith("package:") or is_local_path(t.model)):
        out.append(("teacher.model", t.model, t.allow_pickle, t.trust_remote_code))
    if s.method == "pretrained" and s.model and (s.model.startswith("package:") or is_local_path(s.model)):
        out.append(("student.model", s.model, s.allow_pickle, s.trust_remote_code))
    return out


def check_model_folder(folder: Path, key: str, allow_pickle: bool = False, trust_remote_code: bool = False,
                       num_labels: int | None = None) -> None:
    """A model folder is safe and whole before transformers opens it: safetensors weights (pickle only with
    allow_pickle), no remote code unless trusted, every safetensors file complete, its JSON files parse, each a
    regular file (not a folder, a device or a pipe, which would hang the read); with ``num_labels``, a classifier
    head with that many outputs."""
    section = key.split(".")[0]
    if not folder.is_dir():
        raise CompressError(f"{key}: folder not found: {folder}")
    files = {p.name for p in folder.iterdir()}
    not_files = [f"{key}: {folder / name} is {_kind(folder / name)}, not a file; a model folder holds its weights "
                 f"and settings as regular files" for name in sorted(files & set(CHECKED_FILES))
                 if _kind(folder / name) != "a file"]
    if not_files:
        raise CompressError(*not_files)
    if not files & set(WEIGHT_FILES):
        if not files & set(PICKLE_FILES):
            raise CompressError(f"{key}: no model weights in {folder} (looked for {', '.join(WEIGHT_FILES + PICKLE_FILES)})")
        if not allow_pickle:
            raise CompressError(f"{key}: {folder} holds only pickle weights (pytorch_model.bin), which can run code when "
                                f"loaded; convert them to safetensors, or set {section}.allow_pickle: true if you trust the file")
    problems = []
    for name in JSON_FILES:
        if name in files:
            problem = json_problem(folder / name)
            if problem:
                problems.append(problem)
    if problems:
        raise CompressError(*problems)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8")) if "config.json" in files else {}
    if not isinstance(config, dict):
        raise CompressError(f"{folder / 'config.json'}: a JSON {type(config).__name__}, not the mapping of a model "
                            "config; the file is damaged")
    if config.get("auto_map") and not trust_remote_code:
        raise CompressError(f"{key}: {folder / 'config.json'} asks for the model's own Python code (auto_map: "
                            f"{', '.join(sorted(config['auto_map']))}), which runs when loaded; set "
                            f"{section}.trust_remote_code: true only if you trust it")
    shards = safetensors_files(folder)
    headers = {}
    for shard in shards:
        problem, header = safetensors_problem(shard)
        if problem:
            problems.append(problem)
        headers[shard] = header
    if problems:
        raise CompressError(*problems)
    for shard, header in headers.items():
        for name in HEADS:
            shape = (header or {}).get(name, {}).get("shape")
            if shape and num_labels is not None and shape[0] != num_labels:
                raise CompressError(f"teacher.num_labels: {num_labels}, but the classifier head in {shard} has {shape[0]} "
                                    f"outputs{_label_names(config)}; set teacher.num_labels: {shape[0]} for this task, "
                                    f"or use a model without a classification head")


def _label_names(config: dict) -> str:
    names = config.get("id2label")
    return f" ({', '.join(str(v) for v in names.values())})" if isinstance(names, dict) and names else ""


def _kind(path: Path) -> str:
    """What ``path`` is, following links: "a file", "a directory", "a character device", "a broken link", ..."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return "a broken link" if path.is_symlink() else "missing"
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def json_problem(path: Path) -> str | None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        return f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); the file is damaged"
    except json.JSONDecodeError as exc:
        return f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); the file is truncated or damaged"
    return None


def safetensors_files(folder: Path) -> list[Path]:
    """model.safetensors, or every shard model.safetensors.index.json lists."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return [folder / name for name in sorted(set(weight_map.values()))]
    return [folder / "model.safetensors"] if (folder / "model.safetensors").is_file() else []


def safetensors_problem(path: Path) -> tuple[str | None, dict | None]:
    """(problem, header) of a safetensors file, read without loading a tensor: an 8-byte little-endian header
    length, a JSON header of tensors with their byte ranges, then exactly the bytes those ranges cover.
    A truncated, padded or overwritten file fails here with a line naming it."""
    if not path.is_file():
        kind = _kind(path)
        if kind == "missing":
            return f"{path}: missing (listed in model.safetensors.index.json)", None
        return f"{path}: {kind}, not a file; the weights must be a regular file", None
    size = path.stat().st_size
    damaged = f"{path}: not a complete safetensors file"
    if size < 8:
        return f"{damaged} ({size} bytes)", None
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > min(size - 8, 100 * 2**20):
            return f"{damaged} (its header claims {n:,} bytes; the file has {size:,}): truncated or damaged", None
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return f"{damaged} (its header is not valid safetensors JSON): truncated or damaged", None
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        return (f"{damaged} (its header describes {expected:,} bytes, the file has {size:,}): "
                f"{'truncated' if size < expected else 'damaged'}"), None
    return None, header


# ----------------------------------------------------------------------------- memory


@dataclass
class Estimate:
    """Peak memory of one training loop: weights, gradients and AdamW state, plus activations of the longest
    batch (Korthikanti et al. 2022: s*b*h*(34 + 5*a*s/h) bytes per layer in 16 bit, twice that in fp32)."""

    what: str
    parameters: int
    state_bytes: int
    activation_bytes: int
    batch: int
    tokens: int

    @property
    def total(self) -> int:
        return self.state_bytes + self.activation_bytes

    def line(self) -> str:
        return (f"{self.what} needs about {self.total / GiB:.1f} GiB at batch {self.batch} x {self.tokens} tokens "
                f"({self.parameters / 1e6:.1f}M parameters: weights, gradients and AdamW state "
                f"{self.state_bytes / GiB:.2f} GiB; activations {self.activation_bytes / GiB:.1f} GiB)")


def check_memory(cfg: PipelineConfig, train_rows: int, console, device: str = "cpu") -> dict:
    """Warn, before anything trains, when a training loop would need more memory than the device has free."""
    estimates = training_estimates(cfg, train_rows)
    if not estimates:
        return {}
    available, where = available_memory(device)
    worst = max(estimates, key=lambda e: e.total)
    out = {"estimate_bytes": worst.total, "stage": worst.what, "available_bytes": available, "device": where}
    if available and worst.total > 0.9 * available:
        _warn(console, f"memory: {worst.line()}; {available / GiB:.1f} GiB of {where} is available, so the run will "
                       f"probably fail or swap: lower the batch size or data.max_length")
    return out


def training_estimates(cfg: PipelineConfig, train_rows: int) -> list[Estimate]:
    shape = model_shape(cfg)
    if shape is None:
        return []
    params, layers, hidden, heads = shape
    s = cfg.data.max_length  # batches are padded to their longest sentence: at worst data.max_length
    out = []

    def loop(what: str, tcfg, params: int, layers: int, hidden: int, heads: int, frozen: int = 0) -> Estimate:
        b = min(tcfg.batch_size, max(train_rows, 1))
        scale = 2 if tcfg.precision == "fp32" else 1  # autocast keeps activations in 16 bit (auto: at best)
        act = layers * s * b * hidden * (34 + 5 * heads * s / hidden) * scale
        return Estimate(what, params, 16 * params + 4 * frozen, int(act), b, s)

    if cfg.teacher.finetune:
        out.append(loop("fine-tuning the teacher", cfg.teacher.train, params, layers, hidden, heads))
    if cfg.student.method == "layers":
        kept = len(cfg.student.layers) if cfg.student.layers else math.ceil(layers / 2)
        per_layer = (12 * hidden * hidden)  # attention 4h^2 + feed-forward 8h^2 (intermediate 4h)
        student = max(params - (layers - kept) * per_layer, params // 4)
        out.append(loop("distillation", cfg.distill.train, student, kept, hidden, heads, frozen=params))
    return out


def model_shape(cfg: PipelineConfig) -> tuple[int, int, int, int] | None:
    """(parameters, layers, width, heads) of the teacher, from its config without loading weights."""
    arch = cfg.teacher.architecture
    if arch is not None:
        h = int(arch.get("hidden_size", 768))
        layers = int(arch.get("num_hidden_layers", 12))
        heads = int(arch.get("num_attention_heads", 12))
        ffn = int(arch.get("intermediate_size", 4 * h))
        vocab = 30522 if "vocab_size" not in arch else int(arch["vocab_size"])
        vocab = min(vocab, 50_000)
        positions = max(512, cfg.data.max_length)
        params = (vocab + positions + 2) * h + layers * (4 * h * h + 2 * h * ffn + 9 * h + ffn) + h * h
        return params, layers, h, heads
    spec = cfg.teacher.model or ""
    if not (spec.startswith("package:") or is_local_path(spec)):
        return None  # a hub id: its config is not here before the teacher stage downloads it
    folder = Path(resolve_model_path(spec))
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        params = 0
        for shard in safetensors_files(folder):
            _, header = safetensors_problem(shard)
            params += sum(math.prod(v["shape"]) for k, v in (header or {}).items() if k != "__metadata__")
    except (OSError, ValueError):
        return None
    layers = config.get("num_hidden_layers") or config.get("n_layers")
    hidden = config.get("hidden_size") or config.get("dim")
    heads = config.get("num_attention_heads") or config.get("n_heads")
    if not (params and layers and hidden and heads):
        return None
    return params, int(layers), int(hidden), int(heads)


def available_memory(device: str) -> tuple[int | None, str]:
    """(bytes free, what) on the device training will use: GPU memory under CUDA, else RAM (psutil, or
    /proc/meminfo's MemAvailable)."""
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info()
            return free, f"GPU memory on {torch.cuda.get_device_name(0)}"
    try:
        import psutil

        return psutil.virtual_memory().available, "RAM"
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "RAM"
    except OSError:
        pass
    return None, "RAM"
