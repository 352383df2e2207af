"""``compress verify BUNDLE``: is an edge bundle intact, and does it still compute what it shipped with?

Every file is checked against ``manifest.json`` (sha256 and size; a missing file and a file the manifest
does not list are errors too), then the golden sentences are replayed: tokenized with the bundle's
``tokenizer.json`` through the ``tokenizers`` library, and their stored ids run through ``model.onnx``
and ``model.ort`` with ONNX Runtime, the logits compared with ``golden.json`` within the tolerance the task fixes
in its code (never one read from the bundle). With ``--key``, the signature (``model.sig``) is checked too
(compress/signing.py).

Nothing outside the bundle is opened: the manifest may list only plain relative paths (no absolute path, no
``..``), every file must be a regular file inside the bundle folder (a symbolic link is refused even when its
target has the listed sha256), and a file that fails these checks is never read, by the hash or by the replay.

It runs where the bundle will run, so it imports numpy, onnxruntime and tokenizers only: never torch
or transformers, nor any compress module that imports them (compress.models, compress.data, the stages). The
golden replay is the bundle's task's (its ``bundle_check`` hook: compress/tasks/<task>/golden.py). ``load_bundle``
makes the same checks before it opens a bundle for inference. ``compress generate`` makes the file check, then
hands the bundle to its task's ``generate`` hook (causal-lm: a streamed reply).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from compress import onnxrun, signing, tasks
from compress.bundle_files import check_files, entry_problem
from compress.config.keys import key_problem
from compress.errors import CompressError
from compress.layout import GOLDEN_FILE, MANIFEST_FILE, MODEL_FILES, ONNX_FILE, SIGNATURE_FILE
from compress.records import Check, Manifest

log = logging.getLogger(__name__)


def verify_bundle(bundle: Path, console, public_key: Path | None = None) -> list[Check]:
    """Print the checklist; raise CompressError naming every failure, or return the checks when all pass.
    ``public_key``: check model.sig with it too (without it, a signed bundle is said to be signed, unchecked)."""
    from rich.markup import escape

    problem = key_problem(public_key, private=False) if public_key is not None else None
    if problem:  # before anything is checked: the command line is wrong, not the bundle
        raise CompressError(f"--key: {problem}")
    manifest = load_manifest(bundle)
    console.print(f"verify {escape(str(bundle))} ({manifest.name}, {manifest.variant}, "
                  f"compress {manifest.compress_version})")
    checks = run_checks(bundle, manifest, public_key=public_key)
    for c in checks:
        mark = "[green]ok[/]" if c.ok else "[red]FAIL[/]"
        console.print(f" -[{mark}] {escape(c.what)}: {escape(c.detail)}")
    unchecked = signing.signed_by(bundle) if public_key is None else None
    if unchecked is not None:
        console.print(f"verify: signed ({SIGNATURE_FILE}" + (f", key sha256:{unchecked[:16]}" if unchecked else "")
                      + f") but the signature is not checked; check it with: compress verify {escape(str(bundle))} "
                      "--key PUBLIC.pem")
    failed = [c.problem for c in checks if not c.ok]
    if failed:
        raise CompressError(*failed)
    console.print(f"verify: ok ({len(checks)} checks)")
    return checks


def sign_bundle(bundle: Path, private_key: Path, console) -> Path:
    """``compress sign``: the bundle verified (files and golden replay, nothing printed unless it fails), then
    signed with ``private_key`` (model.sig). A bundle that fails is not signed: its failures are raised."""
    problem = key_problem(private_key, private=True)
    if problem:  # before the replay: a wrong key is said at once
        raise CompressError(f"--key: {problem}")
    manifest = load_manifest(bundle)
    failed = [c.problem for c in run_checks(bundle, manifest) if not c.ok]
    if failed:
        raise CompressError(*failed, f"{bundle}: not signed: it does not verify (compress verify {bundle} lists why)")
    path = signing.sign_bundle(bundle, private_key)
    console.print(f"sign: {path} (every other file of {bundle}; check it with: compress verify {bundle} --key "
                  "PUBLIC.pem)")
    return path


def run_checks(bundle: Path, manifest: Manifest, replay_golden: bool = True,
               public_key: Path | None = None) -> list[Check]:
    """The checks of compress verify and load_bundle: every file against the manifest, the golden replay (unless
    ``replay_golden`` is false), the signature (when a ``public_key`` is given)."""
    checks = check_files(bundle, manifest)
    if replay_golden:
        checks += check_golden(bundle, manifest)
    if public_key is not None:
        checks.append(signing.check_signature(bundle, public_key))
    return checks


def load_manifest(bundle: Path) -> Manifest:
    if not bundle.is_dir():
        raise CompressError(f"{bundle}: not a folder; expected a bundle written by compress run (exports/<name>/)")
    path = bundle / MANIFEST_FILE
    if path.is_symlink():
        raise CompressError(f"{path}: a symbolic link (to {os.readlink(path)}); a bundle holds its files, never links")
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


def load_bundle(bundle: Path, model: str = ONNX_FILE, *, replay_golden: bool = True,
                public_key: Path | None = None) -> Bundle:
    """Open ``bundle`` for inference after the checks of ``compress verify``: every file against manifest.json
    (a changed, missing, unlisted or linked file, or a path outside the bundle, raises CompressError naming it),
    then the golden set replayed through tokenizer.json and every model file (a model swapped for another and
    re-hashed in the manifest computes other logits, and is refused). Nothing of a refused bundle is loaded.

    ``replay_golden=False`` skips the replay (it runs the golden texts through each model file, a second or so for
    a small classifier): the files are still checked against manifest.json, but a bundle whose model was changed
    and re-hashed by someone who could write the manifest then loads; a warning says so. ``public_key``: a PEM
    public key; the bundle's signature (model.sig) must verify with it (needs ``pip install 'compress[sign]'``),
    which shows who made the bundle."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    if model not in manifest.files:
        raise CompressError(f"{bundle / model}: not listed in {MANIFEST_FILE}; this bundle ships "
                            f"{', '.join(n for n in MODEL_FILES if n in manifest.files) or 'no model'}")
    if not replay_golden:
        log.warning("load_bundle %s: golden replay skipped (replay_golden=False): every file is checked against "
                    "%s, but a model changed and re-hashed there is not caught", bundle, MANIFEST_FILE)
    failed = [c.problem for c in run_checks(bundle, manifest, replay_golden, public_key) if not c.ok]
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


# ----------------------------------------------------------------------------- golden replay


def check_golden(bundle: Path, manifest: Manifest) -> list[Check]:
    """The golden texts through tokenizer.json, the golden ids through each model file, within the tolerance the
    bundle's task fixes in its code. A file the file check refused is not opened (its line is there already)."""
    golden = load_golden(bundle, manifest)
    if isinstance(golden, Check):
        return [golden]
    task = tasks.of_report(golden)  # the task that wrote the bundle replays its golden set
    checks = [check_tolerance(task, golden, manifest)]
    if entry_problem(bundle, "tokenizer.json") is None:
        checks.append(check_tokenizer(bundle, golden))
    replay = task.hook("bundle_check")
    for name in MODEL_FILES:
        if name in manifest.files and entry_problem(bundle, name) is None:
            checks.append(replay(bundle, name, golden, manifest))
    return checks


def check_tolerance(task: tasks.Task, golden: dict, manifest: Manifest) -> Check:
    """The replay's tolerance is the task's, fixed in compress (``golden_tolerance`` hook); a bundle that claims
    another (golden.json's or manifest.json's ``atol``, written for readers) is refused: it cannot set its own."""
    fixed = task.hook("golden_tolerance")()
    output = golden.get("output", "logits")
    if output not in fixed:
        return Check(GOLDEN_FILE, f"output {output!r}", f"{GOLDEN_FILE}: output {output!r} is not one compress verify "
                     f"replays for {task.name} bundles ({', '.join(fixed)})")
    claims = {GOLDEN_FILE: golden.get("atol"), MANIFEST_FILE: manifest.golden.get("atol")}
    for where, claimed in claims.items():
        if claimed is not None and claimed != fixed[output]:
            number = isinstance(claimed, (int, float)) and not isinstance(claimed, bool)
            claimed = f"{claimed:g}" if number else repr(claimed)
            return Check(where, f"claims tolerance {claimed}", f"{where}: says the golden {output} may differ by "
                         f"{claimed}, but compress verify holds {task.name} {output} to {fixed[output]:g}, fixed in "
                         f"its code: a bundle cannot set its own tolerance (rebuild it with this compress)")
    return Check("golden tolerance", f"{output} within {fixed[output]:g} ({task.name}, fixed by compress verify)")


def load_golden(bundle: Path, manifest: Manifest) -> dict | Check:
    if GOLDEN_FILE not in manifest.files:
        return Check(GOLDEN_FILE, "not in the bundle",
                     f"{GOLDEN_FILE}: not listed in {MANIFEST_FILE}; this bundle has no golden set to replay (rebuild it "
                     f"with compress run)")
    path = bundle / GOLDEN_FILE
    refused = entry_problem(bundle, GOLDEN_FILE)
    if refused:
        return Check("golden replay", "skipped", f"{GOLDEN_FILE}: not opened (see above); cannot replay the golden set")
    expected = "expected tokenizer.truncation_max_length and samples with text, input_ids, attention_mask and logits"
    try:
        golden = json.loads(path.read_text(encoding="utf-8"))
        int(golden["tokenizer"]["truncation_max_length"])
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
