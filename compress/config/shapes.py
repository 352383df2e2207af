"""Model shapes against the teacher, checked at load without weights: the teacher's config is built the way its
stage builds it (``transformers.AutoConfig`` from teacher.architecture with the task's defaults, or read from the
teacher's config.json, GGUF file, or the local hub cache; nothing is downloaded), and a config transformers has to
build anew (a random teacher, a ``student.method: config`` student) is instantiated on PyTorch's meta device, so
an architecture transformers refuses (a width that is not a multiple of the heads) is one line here instead of a
traceback after the first stages ran. Then the student's layers, heads and feed-forward size, the refine round's,
and every length the run feeds the model, against what the teacher (or a pretrained student) has.

What differs between tasks (which architectures they build students of, the random teacher's defaults, which
lengths reach the model) comes in a :class:`Family` that each task registers (compress/tasks/<task>/rules.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from compress.config.packages import package_name
from compress.config.rules import gguf_file, is_local_path, resolve_model_path
from compress.config.schema import PipelineConfig
from compress.errors import CompressError, ConfigError


@dataclass(frozen=True)
class Sizes:
    """The names an architecture's config gives its sizes (compress.models.LayerSpec's)."""

    count: str
    width: str = "hidden_size"
    heads: str = "num_attention_heads"
    ffn: str = "intermediate_size"
    ffn_prunable: bool = False  # whether compress can prune its feed-forward neurons


@dataclass(frozen=True)
class Family:
    """What a task builds, as the load-time checks need it.

    ``architectures``: the model types the task builds students of (from the teacher's layers or a smaller config)
    and the names of their sizes; ``random_config(cfg)``: the transformers config of the random teacher
    teacher.architecture describes, built by the teacher stage's own function (it raises CompressError for a type
    the task does not build); ``lengths(cfg)``: {key: tokens} the run feeds a model in one sequence;
    ``position_keys``: model type -> its config's position-table key where it is not max_position_embeddings;
    ``position_rule``: the random teacher's default position table, in words."""

    architectures: dict[str, Sizes]
    random_config: Callable[[PipelineConfig], Any]
    lengths: Callable[[PipelineConfig], dict[str, int]]
    position_keys: dict[str, str] = field(default_factory=dict)
    position_rule: str = "sized from data.max_length"


@dataclass
class Model:
    """A model config as the checks read it: where it came from (for messages) and the transformers config."""

    config: Any
    key: str  # the config key that names it (teacher.architecture, teacher.model, student.model)
    where: str  # e.g. "teacher.architecture", "/path/config.json"
    random: bool = False


def check(cfg: PipelineConfig, family: Family) -> list[str]:
    """Every shape problem of ``cfg`` against its teacher, one line each (none when the teacher's config is not
    here: a hub id not in the local cache is checked by the teacher stage)."""
    try:
        teacher = teacher_model(cfg, family)
    except ConfigError as exc:
        return exc.problems
    if teacher is None:  # a pretrained student's own position table can still be read
        student, problems = _pretrained_student(cfg) if cfg.student.method == "pretrained" else (None, [])
        return problems + _position_problems(cfg, family, None, student)
    student, problems = _student(cfg, family, teacher)
    if not problems:
        problems += _refine(cfg, family, student) + _layer_map(cfg, family, teacher, student)
    return problems + _position_problems(cfg, family, teacher, student)


# ----------------------------------------------------------------------------- reading and building configs


def teacher_model(cfg: PipelineConfig, family: Family) -> Model | None:
    t = cfg.teacher
    if t.architecture is not None:
        return Model(random_config(cfg, family), "teacher.architecture", "teacher.architecture", True)
    return read_model(t.model or "", "teacher.model", t.trust_remote_code)


def random_config(cfg: PipelineConfig, family: Family):
    """teacher.architecture built as the teacher stage builds it, then instantiated on the meta device."""
    arch = cfg.teacher.architecture or {}
    model_type = arch.get("model_type")
    booleans = _booleans_for_numbers(model_type, arch) if isinstance(model_type, str) else []
    if booleans:
        raise ConfigError(f"teacher.architecture.{booleans[0]}: {json.dumps(arch[booleans[0]])} is a YAML boolean, but "
                          f"{model_type} configs hold a number there (YAML reads true/false, yes/no and on/off as "
                          "booleans); give the number")
    try:
        config = family.random_config(cfg)
    except CompressError as exc:
        raise ConfigError(*exc.problems) from None
    except Exception as exc:  # noqa: BLE001 - a config class raises its own kinds
        raise ConfigError(f"teacher.architecture: transformers refuses this {model_type} config: "
                          f"{_first_line(exc)}") from None
    _instantiate("teacher.architecture", config, f"this {model_type} config")
    return config


def _booleans_for_numbers(model_type: str, values: dict) -> list[str]:
    """Keys given a boolean whose default in the model type's config class is a number."""
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        return []
    defaults = CONFIG_MAPPING[model_type]()
    return [k for k, v in values.items() if isinstance(v, bool) and isinstance(getattr(defaults, k, None), (int, float))
            and not isinstance(getattr(defaults, k), bool)]


_BUILT: dict[str, str | None] = {}  # a config's JSON -> why transformers refused to build it (None: it built)


def _instantiate(key: str, config, what: str) -> None:
    """Build the model of ``config`` on PyTorch's meta device (no memory, no weights): the checks transformers
    makes in its modules' constructors (heads that divide the width, ...) run, as the stage would run them."""
    text = config.to_json_string()
    if text not in _BUILT:
        import torch
        from transformers import AutoModel

        try:
            with torch.device("meta"):
                AutoModel.from_config(config)
            _BUILT[text] = None
        except Exception as exc:  # noqa: BLE001 - any refusal of transformers' constructors is one line
            _BUILT[text] = _first_line(exc)
    if _BUILT[text] is not None:
        raise ConfigError(f"{key}: transformers refuses {what}: {_BUILT[text]}")


def read_model(spec: str, key: str, trust_remote_code: bool = False) -> Model | None:
    """The config of a pretrained source, read without weights: a folder's (or a package's) config.json, a GGUF
    file's metadata, a hub id's config.json when it is in the local cache. None where it cannot be read here
    (the model's own stage says why, with the preflight's checks of its files)."""
    if not spec:
        return None
    gguf = gguf_file(spec)
    if gguf is not None:
        return _gguf_model(gguf, key)
    local = is_local_path(spec) or package_name(spec) is not None
    if local:
        try:
            folder = Path(resolve_model_path(spec, key))
        except ConfigError:
            return None  # a package without a model: compress.config.rules.check_sources says so
        config_file = folder / "config.json"
    else:
        config_file = _cached_config(spec)
    if config_file is None or not config_file.is_file():
        return None
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # damaged: the preflight's check of the folder names the file and what is wrong
    if not isinstance(raw, dict) or (raw.get("auto_map") and not trust_remote_code):
        return None  # the preflight refuses remote code (or reports the damage)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(config_file.parent), local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"{key}: {config_file}: transformers cannot read this config: {_first_line(exc)}") from None
    return Model(config, key, str(config_file) if local else f"{spec}'s config.json")


def _cached_config(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - not a valid id (check_sources says so), or no cache
        return None
    return Path(found) if isinstance(found, str) else None


_GGUF: dict[tuple[str, float], Any] = {}


def _gguf_model(path: Path, key: str) -> Model | None:
    """A GGUF file's config, as transformers reads it (its metadata only; no tensor is loaded)."""
    stamp = (str(path), path.stat().st_mtime)
    if stamp not in _GGUF:
        try:
            from transformers import AutoConfig
            from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

            values = dict(load_gguf_checkpoint(str(path), return_tensors=False)["config"])
            model_type = values.pop("model_type")
            _GGUF[stamp] = AutoConfig.for_model(model_type, **values)
        except ImportError:
            _GGUF[stamp] = None  # no gguf package: the teacher stage says what to install
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"{key}: {path}: transformers cannot read this GGUF file: {_first_line(exc)}") from None
    config = _GGUF[stamp]
    return None if config is None else Model(config, key, str(path))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


# ----------------------------------------------------------------------------- student and refine


def _size(config, name: str, width: str | None = None) -> int | None:
    value = getattr(config, name, None)
    if value is None and width is not None:  # GPT-2's n_inner: None means 4 x the width
        value = 4 * getattr(config, width)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _student(cfg: PipelineConfig, family: Family, teacher: Model) -> tuple[Model | None, list[str]]:
    """The student's config (None where it cannot be known here) and the problems of student.*."""
    s, tc = cfg.student, teacher.config
    if s.method == "pretrained":
        return _pretrained_student(cfg)
    sizes = family.architectures.get(tc.model_type)
    if sizes is None:
        return None, [f"student.method: {s.method} builds the student from the teacher's architecture, which is offered "
                      f"for {', '.join(sorted(family.architectures))}; the teacher ({teacher.where}) is a "
                      f"'{tc.model_type}'; use student.method: pretrained"]
    if s.method == "config":
        return _config_student(cfg, teacher, sizes)
    layers, heads, ffn = _size(tc, sizes.count), _size(tc, sizes.heads), _size(tc, sizes.ffn, sizes.width)
    problems = []
    if s.architecture == "distilbert" and tc.model_type != "bert":
        problems.append(f"student.architecture: distilbert needs a bert teacher, got '{tc.model_type}'")
    if s.layers is not None and layers is not None:
        out = [i for i in s.layers if i >= layers]
        if out:
            problems.append(f"student.layers: {out} out of range; the teacher has {layers} layers (0..{layers - 1})")
    if s.num_layers is not None and layers is not None and not 0 < s.num_layers <= layers:
        problems.append(f"student.num_layers: {s.num_layers} is not in 1..{layers} (the teacher's layers)")
    if s.num_attention_heads is not None and heads is not None and s.num_attention_heads > heads:
        problems.append(f"student.num_attention_heads: {s.num_attention_heads} is more than the teacher's {heads} heads; "
                        f"pruning can only keep fewer (1..{heads})")
    if s.intermediate_size is not None:
        prunable = sorted(t for t, z in family.architectures.items() if z.ffn_prunable)
        if not sizes.ffn_prunable:
            problems.append(f"student.intermediate_size: feed-forward pruning is not offered for '{tc.model_type}' "
                            f"students; it is for: {', '.join(prunable)}")
        elif ffn is not None and s.intermediate_size > ffn:
            problems.append(f"student.intermediate_size: {s.intermediate_size} is wider than the teacher's feed-forward "
                            f"({ffn}); pruning can only keep fewer neurons (1..{ffn})")
    if problems:
        return None, problems
    count = len(s.layers) if s.layers is not None else s.num_layers or (layers + 1) // 2  # every other layer
    kept = {sizes.count: count, sizes.heads: s.num_attention_heads or heads, sizes.ffn: s.intermediate_size or ffn}
    return Model(_with(tc, kept), "student", "the student"), []


def _pretrained_student(cfg: PipelineConfig) -> tuple[Model | None, list[str]]:
    try:
        return read_model(cfg.student.model or "", "student.model", cfg.student.trust_remote_code), []
    except ConfigError as exc:
        return None, exc.problems


def _config_student(cfg: PipelineConfig, teacher: Model, sizes: Sizes) -> tuple[Model | None, list[str]]:
    """student.method config: the teacher's config with the student's sizes, built and instantiated as the
    student stage builds it."""
    s, tc = cfg.student, teacher.config
    changes = {sizes.count: s.num_layers, sizes.width: s.hidden_size, sizes.heads: s.num_attention_heads,
               sizes.ffn: s.intermediate_size}
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return Model(tc, "student", "the student"), []
    named = [k for k in ("num_attention_heads", "hidden_size", "intermediate_size", "num_layers")
             if getattr(s, k) is not None]
    key = f"student.{named[0]}"
    shown = ", ".join(f"{k} {v}" for k, v in changes.items())
    what = f"the student's {tc.model_type} config ({shown})"
    try:
        from transformers import AutoConfig

        values = {**tc.to_dict(), **changes}
        for drop in ("architectures", "_name_or_path", "transformers_version", "torch_dtype", "dtype", "model_type"):
            values.pop(drop, None)
        config = AutoConfig.for_model(tc.model_type, **values)  # as compress.students.smaller builds it
    except Exception as exc:  # noqa: BLE001
        return None, [f"{key}: transformers refuses {what}: {_first_line(exc)}"]
    try:
        _instantiate(key, config, what)
    except ConfigError as exc:
        return None, exc.problems
    return Model(config, "student", "the student"), []


def _layer_map(cfg: PipelineConfig, family: Family, teacher: Model, student: Model | None) -> list[str]:
    """distill.hidden.layer_map indexes both models' hidden states (0 = the embeddings, then one per layer)."""
    hidden = cfg.distill.hidden
    if hidden.weight <= 0 or not hidden.layer_map or student is None:
        return []
    counts = []
    for model in (student, teacher):
        sizes = family.architectures.get(model.config.model_type)
        counts.append(_size(model.config, sizes.count) if sizes else None)
    n_s, n_t = counts
    if n_s is None or n_t is None:
        return []
    bad = [(a, b) for a, b in hidden.layer_map if not (0 <= a <= n_s and 0 <= b <= n_t)]
    return [f"distill.hidden.layer_map: {bad} out of range (student 0..{n_s}, teacher 0..{n_t}; 0 is the "
            "embeddings)"] if bad else []


def _with(config, changes: dict[str, Any]):
    """A copy of a transformers config with some values changed, rebuilt from its dict as the student stage rebuilds
    it (compress.students.smaller), so its class recomputes what depends on them; a config class that will not
    take its own dict back gets the values set on a copy."""
    values = config.to_dict()
    values.update(changes)
    for key in ("architectures", "_name_or_path", "transformers_version", "torch_dtype", "dtype", "model_type"):
        values.pop(key, None)
    try:
        return type(config)(**values)
    except Exception:  # noqa: BLE001 - then the sizes alone are what the checks read
        import copy

        changed = copy.deepcopy(config)
        for key, value in changes.items():
            setattr(changed, key, value)
        return changed


def _refine(cfg: PipelineConfig, family: Family, student: Model | None) -> list[str]:
    """refine prunes the distilled student: it can keep at most what the student has (a student whose heads or
    feed-forward were pruned already is compress.config.rules' to refuse)."""
    r = cfg.refine
    if not r.enabled or student is None:
        return []
    sizes = family.architectures.get(student.config.model_type) or Sizes(count="num_hidden_layers")
    heads, ffn = _size(student.config, sizes.heads), _size(student.config, sizes.ffn, sizes.width)
    problems = []
    if r.num_attention_heads is not None and heads is not None and cfg.student.num_attention_heads is None \
            and r.num_attention_heads > heads:
        problems.append(f"refine.num_attention_heads: {r.num_attention_heads} is more than the distilled student's "
                        f"{heads} heads; pruning can only keep fewer (1..{heads})")
    if r.intermediate_size is not None and ffn is not None and cfg.student.intermediate_size is None \
            and r.intermediate_size > ffn:
        problems.append(f"refine.intermediate_size: {r.intermediate_size} is wider than the distilled student's "
                        f"feed-forward ({ffn}); pruning can only keep fewer neurons (1..{ffn})")
    return problems


# ----------------------------------------------------------------------------- positions


def position_limit(config) -> int | None:
    """Longest input a model's position table holds (RoBERTa-style models reserve padding_idx + 1 slots);
    None for a model without one."""
    n = getattr(config, "max_position_embeddings", None)
    if not isinstance(n, int) or isinstance(n, bool):
        return None
    if getattr(config, "model_type", None) in ("roberta", "xlm-roberta", "camembert"):
        n -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return n


def _position_problems(cfg: PipelineConfig, family: Family, teacher: Model | None,
                       student: Model | None = None) -> list[str]:
    """Every length the run feeds a model against the teacher's (and a pretrained student's) position table."""
    problems = []
    for model in (teacher, student if cfg.student.method == "pretrained" else None):
        if model is None:
            continue
        limit = position_limit(model.config)
        if limit is None:
            continue
        for key, n in family.lengths(cfg).items():
            if n <= limit:
                continue
            if model.random:
                model_type = model.config.model_type
                pos = family.position_keys.get(model_type, "max_position_embeddings")
                given = pos in (cfg.teacher.architecture or {})
                why = (f"teacher.architecture.{pos} is {limit}" if given else
                       f"the teacher built from teacher.architecture has {limit} positions (its {pos}, by default "
                       f"{family.position_rule})")
                problems.append(f"{key}: {n} tokens, but {why}; the model cannot read longer sequences (lower {key} "
                                f"or {'raise' if given else 'set'} teacher.architecture.{pos})")
            else:
                problems.append(f"{key}: {n} tokens, but {model.key} reads at most {limit} (max_position_embeddings "
                                f"in {model.where}); set {key} <= {limit}")
    return problems
