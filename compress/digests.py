"""Content digests for the caches: a file's sha256 remembered by (path, size, mtime) in a JSON memo beside the
cache (a 500 MB teacher is hashed once, not on every run), a set of files' digest, and a data set's digest.

The teacher-output cache (compress.distill.cache) keys on the teacher's files and the token ids; the score cache
(compress.tasks.causal_lm.score_cache) on a variant's files and the evaluation items."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from compress.data import Encoded
from compress.io import read_json, sha256_file, write_json

MEMO = "file-hashes.json"


def file_digest(path: Path, memo: dict) -> str:
    """sha256 of ``path``, from ``memo`` when its size and mtime are unchanged (then a file changed without a
    change of either would not be re-hashed); a new hash is recorded in ``memo``."""
    st = path.stat()
    name = str(path.resolve())
    entry = memo.get(name)
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        return entry["sha256"]
    digest = sha256_file(path)
    memo[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    return digest


def files_digest(files: list[Path], memo_path: Path | None = None) -> str:
    """sha256 over the names and contents of ``files`` (in the order given), with file hashes remembered in
    ``memo_path`` (JSON; entries of files that no longer exist are dropped when it is rewritten)."""
    memo: dict = {}
    if memo_path is not None and Path(memo_path).is_file():
        try:
            memo = read_json(Path(memo_path))
            memo = memo if isinstance(memo, dict) else {}
        except (OSError, ValueError):
            memo = {}
    before = json.dumps(memo, sort_keys=True)
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{file_digest(path, memo)}\n".encode())
    if memo_path is not None and json.dumps(memo, sort_keys=True) != before:
        memo = {k: v for k, v in memo.items() if Path(k).exists()}
        write_json(Path(memo_path), memo)
    return digest.hexdigest()


def data_digest(data: Encoded) -> str:
    """sha256 over the row lengths, the concatenated token ids and the labels (as int64 bytes)."""
    digest = hashlib.sha256()
    lengths = np.array([len(ids) for ids in data.input_ids], dtype=np.int64)
    flat = np.fromiter((t for ids in data.input_ids for t in ids), dtype=np.int64, count=int(lengths.sum()))
    for part in (lengths, flat, np.asarray(data.labels, dtype=np.int64)):
        digest.update(np.ascontiguousarray(part).tobytes())
        digest.update(b"|")
    return digest.hexdigest()
