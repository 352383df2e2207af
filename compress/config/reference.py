"""The configuration reference (docs/configuration.md), generated from the models in compress.config.schema.

    python -m compress.config.reference > docs/configuration.md

One section per top-level section of a pipeline file, a table per model: every key (dotted, as an
override names it), its type and bounds, its default and its description. Nested models get their own
table below their section's; a list of models (quantize.variants) is described once, as ``<i>``.
tests/test_config_reference.py fails when docs/configuration.md is out of date.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from compress.config.schema import PipelineConfig

COMMAND = "python -m compress.config.reference > docs/configuration.md"

_INTRO = f"""\
# Configuration reference

<!-- Generated from compress/config/schema.py by `{COMMAND}`; do not edit by hand. -->

A pipeline is a YAML file. Defaults < the file < `key=value` overrides on the command line
(`compress run pipelines/tiny.yaml distill.temperature=2`); an override names a key by its dotted path,
and an item of a list by its position (`quantize.variants.0.budget=2`). Unknown keys are refused, and
so are settings that are valid one by one but cannot work together: `compress validate FILE` reports
every problem at once, one line each, before anything runs. It reads the data as `compress run` does
(columns, labels, splits of a local folder or the generated task; a hub dataset is left to the run, which
downloads it) and writes nothing. It takes several files, `compress validate pipelines/*.yaml`: an
argument naming an existing file or ending in `.yaml`/`.yml` is a pipeline, any other a `key=value`
override applied to every file; each file gets its own `ok` line or `error: FILE: ...` lines (one file:
the lines `compress run` would print), and the exit code is 2 when any failed.

## Checked at load

Every check that needs only the config and the files it names is made when the pipeline is loaded, by the same
code in `compress validate` and in `compress run` (before the run writes anything), so both print the same
line: the key, what was found, what is valid; exit code 2.

- **Model shapes against the teacher**, without weights: the teacher's config is built as its stage builds it
  (`teacher.architecture` with the task's defaults through `transformers.AutoConfig`; a folder's or a
  package's `config.json`; a GGUF file's metadata; a hub id's `config.json` only when it is in the local
  Hugging Face cache, nothing is downloaded). A config transformers has to build anew (a random teacher, a
  `student.method: config` student) is instantiated on PyTorch's meta device, so an architecture transformers
  refuses (a width that is not a multiple of the heads) or an unknown `model_type` is one line. Then
  `student.layers` / `student.num_layers`, `student.num_attention_heads` and `student.intermediate_size`
  against what the teacher has (and whether feed-forward pruning is offered for it), `refine.*` against the
  student, and every length the run feeds a model (`data.max_length`, `bench.sequence_length`,
  `bench.mobile_sequence_lengths`; a decoder's `bench.sequence_length + bench.new_tokens`) against its position
  table (`max_position_embeddings`, a random teacher's default included).
- **Types YAML makes that no setting takes**: a boolean where a number is expected (`student.layers: [0, true]`,
  `seed: yes`: YAML reads true/false, yes/no, on/off as booleans), a `!!binary` value (bytes) or a `!!set`.
- **`export.opset`** against the installed exporter: 14 (transformers' attention is exported from opset 14 on)
  to torch's highest (`torch.onnx`'s `ONNX_MAX_OPSET`, bounded by `onnx`'s).
- **Where the run writes**: `ship.dir`, `distill.cache.dir` and the run folder (`--runs-dir`, which
  `compress validate` takes too; `runs` by default) must be folders or not exist yet, below a writable folder; the run's name, every
  variant's and sweep point's (each a folder name) must fit the file system's `PC_NAME_MAX` less the 5
  characters of the temporary `.<name>.tmp`, and each path with what compress writes below it its
  `PC_PATH_MAX`.
- **Sources**: a Windows path (`C:\\data`, `D:/data`, `\\\\server\\share`) is refused on POSIX; a source that is
  not a local path must be spelled as a hub id (huggingface_hub's `validate_repo_id`); `package:<name>` must
  be installed and hold one model, found without running its code (below); a local model folder must exist.
- **Model folders** (by `compress validate` after the config, and by `compress run`'s preflight before it
  writes anything): safetensors weights (pickle only when allowed), no
  remote code unless trusted, complete safetensors and JSON files, each a regular file (a directory or a device
  named `model.safetensors` is said to be one), a classifier head of `teacher.num_labels` outputs.
- **Error lines show visible characters only**: a control, zero-width or other invisible character is shown
  escaped (`alph\\u200ba`), and in a key, or a value compared with ASCII choices, so is any non-ASCII letter
  (`d\\u0430ta`, a Cyrillic a).

`package:<name>` sources are read from the installed files: the distribution's record (`importlib.metadata`),
else the package's folder as Python's import system finds it, without importing it. Compress uses the one `.gguf`
file in it, or the one folder holding a `config.json` beside weights. A package that holds neither may declare an
entry point, `[project.entry-points."compress.models"] <name> = "<module>:<function>"`, returning the model's
folder: the only package code compress runs, and only for a package that declares it.
"""

_BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="),
           (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "<="))
_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null", Any: "any"}


def markdown() -> str:
    """The whole reference as markdown."""
    top = PipelineConfig.model_fields
    sections = [k for k, f in top.items() if _model_in(f.annotation)]
    out = [_INTRO, "## Contents\n", "- [Top level](#top-level)"]
    out += [f"- [{k}](#{k})" for k in sections]
    out += ["", "## Top level\n", _doc(PipelineConfig), _table(PipelineConfig, "")]
    for key in sections:
        out.append(f"## {key}\n")
        out += _model_sections(top[key], key, heading=False)
    return "\n".join(out).rstrip("\n") + "\n"


def _model_sections(field: FieldInfo, key: str, heading: bool = True) -> list[str]:
    """The table of the model under ``key``, then those of the models nested in it, depth first."""
    model, shape = _model_in(field.annotation)
    prefix = f"{key}.<i>" if shape == "list" else f"{key}.<name>" if shape == "dict" else key
    out = [f"### `{prefix}`\n"] if heading else []
    out.append(_doc(model))
    if shape == "list":
        out.append(f"Each item of the list `{key}`; `<i>` is its position (0, 1, ...).\n")
    elif shape == "dict":
        out.append(f"Each value of the mapping `{key}`; `<name>` is its key.\n")
    elif _allows_none(field.annotation):
        out.append(f"`{key}` may be null (its description says what that means); as a mapping, it takes these keys.\n")
    out.append(_table(model, prefix))
    for name, sub in model.model_fields.items():
        if _model_in(sub.annotation):
            out += _model_sections(sub, f"{prefix}.{name}")
    return out


def _table(model: type[BaseModel], prefix: str) -> str:
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        rows.append(f"| `{key}` | {_cell(_type(field, key))} | {_cell(_default(field))} | "
                    f"{_cell(field.description or '')} |")
    return "\n".join(rows) + "\n"


def _doc(model: type[BaseModel]) -> str:
    return " ".join(inspect.cleandoc(model.__doc__ or "").split()) + "\n"


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, ``<`` written as an entity so ``<name>`` is not read as HTML
    (text between backticks is left as it is)."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def _type(field: FieldInfo, key: str) -> str:
    found = _model_in(field.annotation)
    if found:
        model, shape = found
        what = {"list": f"list of mappings, each one as in `{key}.<i>`",
                "dict": f"mapping of names to mappings, each one as in `{key}.<name>`"}.get(shape, f"mapping (`{key}` below)")
        text = f"{what} or null" if _allows_none(field.annotation) else what
    else:
        text = _annotation(field.annotation)
    bounds = [f"{sign} {_number(getattr(m, attr))}" for m in field.metadata
              for kind, attr, sign in _BOUNDS if isinstance(m, kind)]
    bounds += [f"at least {m.min_length} item{'s' if m.min_length != 1 else ''}" for m in field.metadata
               if isinstance(m, annotated_types.MinLen)]
    bounds += [f"matching `{m.pattern}`" for m in field.metadata if getattr(m, "pattern", None)]
    return f"{text}; {', '.join(bounds)}" if bounds else text


def _annotation(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{_yaml(a)}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_annotation(a) for a in sorted(args, key=lambda a: a is type(None)))
    if origin is list:
        if args and typing.get_origin(args[0]) is Literal:
            return "list of " + ", ".join(f"`{_yaml(a)}`" for a in typing.get_args(args[0]))
        return f"list of {_annotation(args[0])}" if args else "list"
    if origin is tuple:
        return "(" + ", ".join(_annotation(a) for a in args) + ")"
    if origin is dict:
        return f"mapping of {_annotation(args[0])} to {_annotation(args[1])}" if args else "mapping"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "its defaults (below)"
    if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
        value = [v.model_dump(mode="json", exclude_defaults=True) for v in value]
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    """``value`` as YAML flow text on one line (what a file or an override would say)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip().removesuffix("...").strip()


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _model_in(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """(the model, ``"one"``/``"list"``/``"dict"``) when ``annotation`` holds a model, alone, optional, in a
    list or as the values of a dict; None otherwise."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "one"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return next(filter(None, (_model_in(a) for a in args if a is not type(None))), None)
    if origin in (list, dict) and args:
        inner = _model_in(args[-1])
        if inner and inner[1] == "one":
            return inner[0], "list" if origin is list else "dict"
    return None


def _allows_none(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def models() -> list[type[BaseModel]]:
    """Every model reachable from PipelineConfig, PipelineConfig first, each once."""
    found: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [PipelineConfig]
    while todo:
        model = todo.pop(0)
        if model not in found:
            found.append(model)
            todo += [m for f in model.model_fields.values() if (m := (_model_in(f.annotation) or (None,))[0])]
    return found


if __name__ == "__main__":
    print(markdown(), end="")
