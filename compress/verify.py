"""``compress verify BUNDLE``: is an edge bundle intact, and does it still compute what it shipped with?

Every file is checked against ``manifest.json`` (sha256 and size; a missing file and a file the manifest
does not list are errors too), then the golden sentences are replayed: tokenized with the bundle's
``tokenizer.json`` through the ``tokenizers`` library, and their stored ids run through ``model.onnx``
and ``model.ort`` with ONNX Runtime, the logits compared with ``golden.json``.

It runs where the bundle will run, so it imports numpy, onnxruntime and tokenizers only: never torch
or transformers, nor any compress module that imports them (compress.models, compress.data, the stages). The
golden replay is the bundle's task's (its ``bundle_check`` hook: compress/tasks/<task>/golden.py). ``compress generate``
makes the same file check, then hands the bundle to its task's ``generate`` hook (causal-lm: a streamed reply).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from compress import onnxrun, tasks
from compress.errors import CompressError
from compress.io import sha256_file
from compress.layout import GOLDEN_FILE, MANIFEST_FILE, MODEL_FILES, ONNX_FILE
from compress.records import Check, Manifest


def verify_bundle(bundle: Path, console) -> list[Check]:
    """Print the checklist; raise CompressError naming every failure, or return the checks when all pass."""
    from rich.markup import escape

    manifest = load_manifest(bundle)
    console.print(f"verify {escape(str(bundle))} ({manifest.name}, {manifest.variant}, "
                  f"compress {manifest.compress_version})")
    checks = check_files(bundle, manifest)
    checks += check_golden(bundle, manifest)
    for c in checks:
        mark = "[green]ok[/]" if c.ok else "[red]FAIL[/]"
        console.print(f" -[{mark}] {escape(c.what)}: {escape(c.detail)}")
    failed = [c.problem for c in checks if not c.ok]
    if failed:
        raise CompressError(*failed)
    console.print(f"verify: ok ({len(checks)} checks)")
    return checks


def load_manifest(bundle: Path) -> Manifest:
    if not bundle.is_dir():
        raise CompressError(f"{bundle}: not a folder; expected a bundle written by compress run (exports/<name>/)")
    path = bundle / MANIFEST_FILE
    if not path.is_file():
        raise CompressError(f"{path}: not found; expected a bundle written by compress run (exports/<name>/)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompressError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CompressError(f"{path}: has no 'files' mapping of name -> sha256 and bytes")
    try:
        return Manifest.model_validate(manifest)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CompressError(f"{path}: not a compress manifest: {where}: {first['msg']}") from None


# ----------------------------------------------------------------------------- loading for inference


@dataclass(frozen=True)
class Prediction:
    """One text's class as the bundle's model gives it: the class name (manifest.json's labels), its id, its softmax
    probability and the logits it was read from."""

    label: str
    index: int
    score: float
    logits: tuple[float, ...]


class Bundle:
    """An edge bundle opened for inference by :func:`load_bundle`: ``predict`` gives each text's class by name,
    ``logits`` the raw scores, ``labels`` names the classes. Built on onnxruntime and tokenizers only, as on a
    device; each text runs alone, unpadded, as golden.json was computed."""

    def __init__(self, path: Path, manifest: Manifest, model: str = ONNX_FILE):
        from tokenizers import Tokenizer

        self.path, self.manifest = path, manifest
        golden = json.loads((path / GOLDEN_FILE).read_text(encoding="utf-8")) if (path / GOLDEN_FILE).is_file() else {}
        spec = golden.get("tokenizer", {})
        try:
            self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
            raise CompressError(f"{path / 'tokenizer.json'}: the tokenizers library cannot load it ({exc})") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=int(spec.get("truncation_max_length", 512)))
        self.add_special_tokens = bool(spec.get("add_special_tokens", True))
        self.session = onnxrun.session(path / model)
        self.labels = {int(k): v for k, v in (manifest.get("labels") or {}).items()}

    def predict(self, texts: str | Sequence[str]) -> list[Prediction]:
        """One row per text (one text: one row): the likeliest class by name, its probability and the logits."""
        rows = []
        for logits in self.logits(texts):
            p = np.exp(logits.astype(np.float64) - logits.max())
            best = int(logits.argmax())
            rows.append(Prediction(self.labels.get(best, str(best)), best, float(p[best] / p.sum()),
                                   tuple(float(x) for x in logits)))
        return rows

    def logits(self, texts: str | Sequence[str]) -> np.ndarray:
        """Logits, shape (texts, classes): one row per text (a string is one text)."""
        rows = []
        for text in _texts(texts):
            enc = self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens)
            ids = np.asarray([enc.ids], dtype=np.int64)
            mask = np.asarray([enc.attention_mask], dtype=np.int64)
            rows.append(self.session.run(["logits"], onnxrun.feeds(self.session, ids, mask))[0][0])
        return np.stack(rows) if rows else np.empty((0, len(self.labels)), dtype=np.float32)


def _texts(texts: str | Sequence[str]) -> list[str]:
    """One string is one text (never its characters); a list or tuple of strings, each one."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        kind = type(texts).__name__ if not isinstance(texts, (list, tuple)) else (
            "a list holding " + next(type(t).__name__ for t in texts if not isinstance(t, str)))
        raise TypeError(f"texts: a string or a list of strings, got {kind}")
    return list(texts)


def load_bundle(bundle: Path, model: str = ONNX_FILE) -> Bundle:
    """Open ``bundle`` for inference, after checking every file against manifest.json: a changed, missing or
    unlisted file raises CompressError naming it, and nothing of the bundle is loaded. (``compress verify``
    also replays the golden set; this is the check a program makes each time it loads the model.)"""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    if model not in manifest.files:
        raise CompressError(f"{bundle / model}: not listed in {MANIFEST_FILE}; this bundle ships "
                            f"{', '.join(n for n in MODEL_FILES if n in manifest.files) or 'no model'}")
    failed = [c.problem for c in check_files(bundle, manifest) if not c.ok]
    if failed:
        raise CompressError(*failed)
    return Bundle(bundle, manifest, model)


def generate(bundle: Path, prompt: str, **options) -> Iterator[str]:
    """``compress generate``: every file checked against manifest.json (nothing is loaded from a changed bundle),
    then the task that wrote the bundle streams its reply (its ``generate`` hook: causal-lm only so far)."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    task = tasks.get(manifest.task)
    if not task.has("generate"):
        able = [n for n in tasks.names() if tasks.get(n).has("generate")]
        raise CompressError(f"{bundle}: a {task.name} bundle; compress generate runs {', '.join(able)} bundles")
    failed = [c.problem for c in check_files(bundle, manifest) if not c.ok]
    if failed:
        raise CompressError(*failed)
    return task.hook("generate")(bundle, prompt, **options)


# ----------------------------------------------------------------------------- files


def check_files(bundle: Path, manifest: Manifest) -> list[Check]:
    """Each listed file against its sha256 and size, then every file on disk the manifest does not list."""
    checks = []
    for name, entry in sorted(manifest.files.items()):
        path = bundle / name
        if not path.is_file():
            checks.append(Check(name, "missing", f"{name}: missing from {bundle} (listed in {MANIFEST_FILE})"))
            continue
        size, digest = path.stat().st_size, sha256_file(path)
        if size != entry.bytes:
            checks.append(Check(name, f"{size:,} bytes, manifest says {entry.bytes}",
                                f"{name}: {size:,} bytes, {MANIFEST_FILE} says {entry.bytes}: the file was changed"))
        elif digest != entry.sha256:
            checks.append(Check(name, f"sha256 {digest[:16]}..., manifest says {entry.sha256[:16]}...",
                                f"{name}: sha256 {digest} differs from {MANIFEST_FILE} ({entry.sha256}): the file "
                                f"was changed"))
        else:
            checks.append(Check(name, f"sha256 and size ({size:,} bytes) match {MANIFEST_FILE}"))
    listed = set(manifest.files) | {MANIFEST_FILE}
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        name = path.relative_to(bundle).as_posix()
        if name not in listed:
            checks.append(Check(name, f"not listed in {MANIFEST_FILE}",
                                f"{name}: in {bundle} but not listed in {MANIFEST_FILE}; remove it or rebuild the bundle"))
    return checks


# ----------------------------------------------------------------------------- golden replay


def check_golden(bundle: Path, manifest: Manifest) -> list[Check]:
    """The golden texts through tokenizer.json, the golden ids through each model file."""
    golden = load_golden(bundle, manifest)
    if isinstance(golden, Check):
        return [golden]
    checks = [check_tokenizer(bundle, golden)]
    replay = tasks.of_report(golden).hook("bundle_check")  # the task that wrote the bundle replays its golden set
    for name in MODEL_FILES:
        if name in manifest.files:
            checks.append(replay(bundle, name, golden, manifest))
    return checks


def load_golden(bundle: Path, manifest: Manifest) -> dict | Check:
    if GOLDEN_FILE not in manifest.files:
        return Check(GOLDEN_FILE, "not in the bundle",
                     f"{GOLDEN_FILE}: not listed in {MANIFEST_FILE}; this bundle has no golden set to replay (rebuild it "
                     f"with compress run)")
    path = bundle / GOLDEN_FILE
    if not path.is_file():
        return Check("golden replay", "skipped", f"{GOLDEN_FILE}: missing; cannot replay the golden set")
    expected = ("expected atol, tokenizer.truncation_max_length and samples with text, input_ids, attention_mask "
                "and logits")
    try:
        golden = json.loads(path.read_text(encoding="utf-8"))
        float(golden["atol"]), int(golden["tokenizer"]["truncation_max_length"])
        incomplete = [i for i, s in enumerate(golden["samples"])
                      if not all(k in s for k in ("text", "input_ids", "attention_mask", "logits"))]
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        return Check("golden replay", "skipped", f"{GOLDEN_FILE}: unreadable ({type(exc).__name__}: {exc}); {expected}")
    if incomplete:
        return Check("golden replay", "skipped", f"{GOLDEN_FILE}: sample {incomplete[0]} is incomplete; {expected}")
    if not golden["samples"]:
        return Check("golden replay", "skipped", f"{GOLDEN_FILE}: no samples to replay")
    return golden


def check_tokenizer(bundle: Path, golden: dict) -> Check:
    """The ``tokenizers`` library on tokenizer.json must give the stored ids (run as the ship stage ran it)."""
    from tokenizers import Tokenizer

    what = "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        return Check(what, "cannot be loaded", f"tokenizer.json: the tokenizers library cannot load it ({exc})")
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=int(golden["tokenizer"]["truncation_max_length"]))
    add_special = bool(golden["tokenizer"].get("add_special_tokens", True))
    wrong = []
    for i, s in enumerate(golden["samples"]):
        enc = tokenizer.encode(s["text"], add_special_tokens=add_special)
        if enc.ids != s["input_ids"] or enc.attention_mask != s["attention_mask"]:
            wrong.append((i, s, enc))
    n = len(golden["samples"])
    if not wrong:
        return Check(what, f"{n} golden texts give the stored input_ids and attention_mask")
    i, s, enc = wrong[0]
    return Check(what, f"{len(wrong)} of {n} golden texts give other ids",
                 f"tokenizer.json: {len(wrong)} of {n} golden texts give other token ids than {GOLDEN_FILE}; text {i} "
                 f"({s['text'][:50]!r}): {enc.ids[:10]} vs {s['input_ids'][:10]}")
