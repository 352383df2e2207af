"""What a finished stage wrote, and the check before it is skipped.

A stage's record (``<stage>/stage.json``) lists the sha256 and size of every file in its folder (``files``, by path
relative to the folder) and of every file it wrote outside it (``outputs``: the report's files, the bundle; by path
relative to the run folder when inside it, else as the stage names it). Before a finished stage is skipped, every one
of them is read and hashed again: a file changed, missing or added since is a problem, named. An added file counts
because stages read folders, not only the files they name: transformers loads whatever weights, adapter or tokenizer
files a model folder holds, and the ship stage bundles the tokenizer files it finds in the export folder.

The cost is one sha256 pass over the skipped stages' files per run (about 1.4 GB/s on one core); stage.json itself
is not listed. A command that rewrites such a file on purpose (``compress report`` renders report.md and report.html
again) records its new sha256 with :func:`rerecord`. A bundle's signature (``model.sig``) is not among a stage's
outputs: ``compress sign`` adds it to a finished bundle on purpose, and ``compress verify --key`` checks it.
"""

from __future__ import annotations

from pathlib import Path

from compress.io import sha256_file
from compress.layout import SIGNATURE_FILE, STAGE_FILE
from compress.records import FileDigest, StageRecord, read_stage, write


def folder_digests(folder: Path) -> dict[str, FileDigest]:
    """sha256 and size of every file under ``folder`` (stage.json aside), by path relative to it."""
    return {rel: _digest(path) for rel, path in _files(folder).items()}


def output_digests(paths: list[Path], run_dir: Path) -> dict[str, FileDigest]:
    """sha256 and size of every file a stage wrote outside its folder: each of ``paths`` that is a file, and every
    file under each that is a folder; keyed by :func:`output_key`."""
    found: dict[str, FileDigest] = {}
    for path in paths:
        for key, file in _output_files(path, run_dir).items():
            found[key] = _digest(file)
    return found


def output_key(path: Path, run_dir: Path) -> str:
    """How ``outputs`` names a file: relative to the run folder when inside it (the run folder may move), else the
    path as the stage gave it."""
    try:
        return path.relative_to(run_dir).as_posix()
    except ValueError:
        return path.as_posix()


def rerecord(record_path: Path, paths: list[Path], run_dir: Path) -> list[str]:
    """After a command rewrote files a finished stage wrote outside its folder (``compress report`` renders
    report.md and report.html again from report.json), the new sha256 of each in that stage's record, so the next
    run does not take them for damage. Only files the record lists are updated; returns their keys."""
    try:
        record = read_stage(record_path)
    except (OSError, ValueError):  # no record, or not a whole one: nothing to keep true
        return []
    keys = [output_key(p, run_dir) for p in paths if output_key(p, run_dir) in record.outputs and p.is_file()]
    if keys:
        record.outputs = {**record.outputs, **{k: _digest(run_dir / k) for k in keys}}
        write(record_path, record)
    return keys


def problems(record: StageRecord, folder: Path, outputs: list[Path], run_dir: Path) -> list[tuple[Path, str]]:
    """(path, what is wrong) for every file of a finished stage that differs from its record: changed (size or
    sha256), missing, or not written by it. A record from before a list was kept (no ``files`` or no ``outputs``)
    is not checked against that list."""
    found: list[tuple[Path, str]] = []
    if "files" in record.model_fields_set:
        found += _compare(record.stage, record.files, _files(folder), lambda rel: folder / rel)
    if "outputs" in record.model_fields_set:
        for path in outputs:
            key = output_key(path, run_dir)
            recorded = {k: v for k, v in record.outputs.items() if k == key or k.startswith(key + "/")}
            found += _compare(record.stage, recorded, _output_files(path, run_dir),
                              lambda k, base=path, n=len(key) + 1: base / k[n:] if len(k) >= n else base)
    return found


def _compare(stage: str, recorded: dict[str, FileDigest], present: dict[str, Path], where) -> list[tuple[Path, str]]:
    """Recorded against present files, both by key; ``where(key)`` is the path of a missing one."""
    found = []
    for key in sorted(set(recorded) | set(present)):
        if key not in present:
            found.append((where(key), f"missing (the {stage} stage wrote it)"))
            continue
        path = present[key]
        if key not in recorded:
            found.append((path, f"not written by the {stage} stage (added since; stages read whole folders)"))
            continue
        want, size = recorded[key], path.stat().st_size
        if size != want.bytes:
            found.append((path, f"{size:,} bytes, but the {stage} stage wrote {want.bytes:,} (truncated or changed "
                                f"since)"))
        elif sha256_file(path) != want.sha256:
            found.append((path, f"sha256 differs from what the {stage} stage wrote (changed since)"))
    return found


def _files(folder: Path, record: str | None = STAGE_FILE) -> dict[str, Path]:
    """Every file under ``folder`` but its ``record``, by posix path relative to it, sorted. A symlink to a file
    counts as a file (what it points at is what a reader gets)."""
    if not folder.is_dir():
        return {}
    found = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    found.pop(record, None)
    return found


def _output_files(path: Path, run_dir: Path) -> dict[str, Path]:
    key = output_key(path, run_dir)
    if path.is_dir():
        return {f"{key}/{rel}": p for rel, p in _files(path, record=None).items() if rel != SIGNATURE_FILE}
    return {key: path} if path.is_file() else {}


def _digest(path: Path) -> FileDigest:
    return FileDigest(sha256=sha256_file(path), bytes=path.stat().st_size)
