"""Scores are a function of a variant's files, the evaluation items and the scoring settings, so they are cached
by content: <runs-dir>/.cache/scores/<key>.json. A variant whose files are byte-identical to one scored before
is read back instead of scored again: the teacher and student-init in every point of a sweep (minutes each for
a 135M-parameter model on a CPU), the variants a rerun did not change.

The key is a sha256 over the variant's files (weights, ONNX graph and its external data, config and tokenizer
files; file hashes remembered by size and mtime, compress.digests), the items of every set, the WikiText-2 text
and the settings that change a score (window, tokens, max length, batch size, the runtime and its device).
An unreadable or damaged entry is a miss, never an error."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from compress.digests import MEMO, files_digest
from compress.layout import CACHE_DIR

VERSION = 1
SCORES_DIR = "scores"
MODEL_SUFFIXES = (".safetensors", ".onnx", ".data", ".onnx_data", ".json", ".jinja", ".txt", ".model")


def root(runs_dir: Path) -> Path:
    """The score cache every run under ``runs_dir`` shares."""
    return Path(runs_dir) / CACHE_DIR / SCORES_DIR


def model_files(folder: Path) -> list[Path]:
    """The files a variant's scores depend on: everything of a model's kind in its folder (weights, graph, external
    data, config, tokenizer, chat template), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(MODEL_SUFFIXES))


def items_digest(items: dict, text: str | None) -> str:
    """sha256 over the items of every set (in order) and the WikiText-2 text: once per stage, the same for every
    variant."""
    digest = hashlib.sha256()
    for name in sorted(items):
        digest.update(f"\0{name}\0".encode())
        digest.update(json.dumps([dataclasses.asdict(it) for it in items[name]], sort_keys=True).encode())
    digest.update(b"\0wikitext\0" + (text or "").encode("utf-8"))
    return digest.hexdigest()


def settings_digest(items: str, settings: dict) -> str:
    """sha256 over ``items`` (items_digest) and ``settings`` (JSON-able: what else changes a score)."""
    return hashlib.sha256(json.dumps({"version": VERSION, "items": items, "settings": settings},
                                     sort_keys=True).encode()).hexdigest()


class ScoreCache:
    """A folder of scores, one JSON file per key."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def key(self, files: list[Path], settings: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        model = files_digest(files, self.folder / MEMO)
        return hashlib.sha256(f"{model}\0{settings}".encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        path = self.folder / f"{key}.json"
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry.get("result") if isinstance(entry, dict) and entry.get("key") == key else None

    def put(self, key: str, result: dict) -> None:
        """Written to a temporary file and renamed: a killed run leaves no half entry."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"key": key, "result": result}), encoding="utf-8")
        os.replace(tmp, self.folder / f"{key}.json")
