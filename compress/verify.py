"""``compress verify BUNDLE``: is an edge bundle intact, and does it still compute what it shipped with?

Every file is checked against ``manifest.json`` (sha256 and size; a missing file and a file the manifest
does not list are errors too), then the golden sentences are replayed: tokenized with the bundle's
``tokenizer.json`` through the ``tokenizers`` library, and their stored ids run through ``model.onnx``
and ``model.ort`` with ONNX Runtime, the logits compared with ``golden.json``.

It runs where the bundle will run, so it imports numpy, onnxruntime and tokenizers only: never torch
or transformers, nor any compress module that imports them (compress.models, compress.data, the stages).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress import onnxrun
from compress.errors import CompressError
from compress.io import sha256_file

MANIFEST_FILE = "manifest.json"  # the same names as compress.stages.ship, which this module must not import
GOLDEN_FILE = "golden.json"
MODEL_FILES = ("model.onnx", "model.ort")


@dataclass
class Check:
    """One line of the checklist; ``problem`` (the error line) is set when it failed."""

    what: str
    detail: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_bundle(bundle: Path, console) -> list[Check]:
    """Print the checklist; raise CompressError naming every failure, or return the checks when all pass."""
    from rich.markup import escape

    manifest = load_manifest(bundle)
    console.print(f"verify {escape(str(bundle))} ({manifest.get('name', '?')}, {manifest.get('variant', '?')}, "
                  f"compress {manifest.get('compress_version', '?')})")
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


def load_manifest(bundle: Path) -> dict:
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
    return manifest


# ----------------------------------------------------------------------------- loading for inference


class Bundle:
    """An edge bundle opened for inference by :func:`load_bundle`: ``predict(texts)`` gives logits and
    ``labels`` names the classes. Built on onnxruntime and tokenizers only, as on a device."""

    def __init__(self, path: Path, manifest: dict, model: str = "model.onnx"):
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
        self.labels = {int(k): v for k, v in manifest.get("labels", {}).items()}

    def predict(self, texts: list[str]) -> np.ndarray:
        """Logits, one row per text (each run alone, unpadded, as golden.json was computed)."""
        rows = []
        for text in texts:
            enc = self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens)
            ids = np.asarray([enc.ids], dtype=np.int64)
            mask = np.asarray([enc.attention_mask], dtype=np.int64)
            rows.append(self.session.run(["logits"], onnxrun.feeds(self.session, ids, mask))[0][0])
        return np.stack(rows) if rows else np.empty((0, len(self.labels)), dtype=np.float32)


def load_bundle(bundle: Path, model: str = "model.onnx") -> Bundle:
    """Open ``bundle`` for inference, after checking every file against manifest.json: a changed, missing or
    unlisted file raises CompressError naming it, and nothing of the bundle is loaded. (``compress verify``
    also replays the golden set; this is the check a program makes each time it loads the model.)"""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    if model not in manifest["files"]:
        raise CompressError(f"{bundle / model}: not listed in {MANIFEST_FILE}; this bundle ships "
                            f"{', '.join(n for n in MODEL_FILES if n in manifest['files']) or 'no model'}")
    failed = [c.problem for c in check_files(bundle, manifest) if not c.ok]
    if failed:
        raise CompressError(*failed)
    return Bundle(bundle, manifest, model)


# ----------------------------------------------------------------------------- files


def check_files(bundle: Path, manifest: dict) -> list[Check]:
    """Each listed file against its sha256 and size, then every file on disk the manifest does not list."""
    checks = []
    for name, entry in sorted(manifest["files"].items()):
        path = bundle / name
        if not path.is_file():
            checks.append(Check(name, "missing", f"{name}: missing from {bundle} (listed in {MANIFEST_FILE})"))
            continue
        size, digest = path.stat().st_size, sha256_file(path)
        if size != entry.get("bytes"):
            checks.append(Check(name, f"{size:,} bytes, manifest says {entry.get('bytes')}",
                                f"{name}: {size:,} bytes, {MANIFEST_FILE} says {entry.get('bytes')}: the file was changed"))
        elif digest != entry.get("sha256"):
            checks.append(Check(name, f"sha256 {digest[:16]}..., manifest says {str(entry.get('sha256'))[:16]}...",
                                f"{name}: sha256 {digest} differs from {MANIFEST_FILE} ({entry.get('sha256')}): the file "
                                f"was changed"))
        else:
            checks.append(Check(name, f"sha256 and size ({size:,} bytes) match {MANIFEST_FILE}"))
    listed = set(manifest["files"]) | {MANIFEST_FILE}
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        name = path.relative_to(bundle).as_posix()
        if name not in listed:
            checks.append(Check(name, f"not listed in {MANIFEST_FILE}",
                                f"{name}: in {bundle} but not listed in {MANIFEST_FILE}; remove it or rebuild the bundle"))
    return checks


# ----------------------------------------------------------------------------- golden replay


def check_golden(bundle: Path, manifest: dict) -> list[Check]:
    """The golden texts through tokenizer.json, the golden ids through each model file."""
    golden = load_golden(bundle, manifest)
    if isinstance(golden, Check):
        return [golden]
    checks = [check_tokenizer(bundle, golden)]
    for name in MODEL_FILES:
        if name in manifest["files"]:
            check = check_decoder if golden.get("task") == "causal-lm" else check_model
            checks.append(check(bundle, name, golden, manifest))
    return checks


def load_golden(bundle: Path, manifest: dict) -> dict | Check:
    if GOLDEN_FILE not in manifest["files"]:
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


def check_decoder(bundle: Path, name: str, golden: dict, manifest: dict) -> Check:
    """A causal LM: each golden prompt's next-token logits (empty KV cache) within the tolerance, and its greedy
    continuation through the KV cache token for token."""
    from compress.llm.onnxlm import Decoder  # numpy and onnxruntime only

    atol = float(golden["atol"])
    try:
        dec = Decoder(bundle / name)
    except Exception as exc:  # onnxruntime's load errors have no common base class; ValueError: no cache inputs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check(name, "cannot be loaded", f"{name}: cannot be loaded as a decoder with a KV cache ({first[:200]})")
    worst, bad, differ = 0.0, 0, []
    for i, s in enumerate(golden["samples"]):
        ids = np.asarray([s["input_ids"]], dtype=np.int64)
        try:
            got = dec.logits(ids, np.ones_like(ids))[0, -1]
            tokens = dec.greedy(s["input_ids"], int(golden["new_tokens"]), golden.get("eos_token_id"))
        except Exception as exc:  # a corrupted graph may load and still fail to run
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Check(name, "fails to run", f"{name}: fails on golden prompt {i} ({first[:200]})")
        diff = float(np.abs(got - np.asarray(s["logits"], dtype=np.float32)).max())
        worst, bad = max(worst, diff), bad + (diff > atol)
        if tokens != s.get("greedy_tokens"):
            differ.append(i)
    n = len(golden["samples"])
    detail = (f"{n} golden prompts, next-token logits max diff {worst:.2e} (tolerance {atol:g}), greedy continuations "
              f"identical on {n - len(differ)}/{n}")
    if not bad and not differ:
        return Check(name, detail)
    return Check(name, detail, f"{name}: " + "; ".join(
        ([f"logits differ from {GOLDEN_FILE} by up to {worst:.3g} (tolerance {atol:g}) on {bad} of {n} prompts"] if bad else [])
        + ([f"greedy tokens differ from {GOLDEN_FILE} on prompts {differ}"] if differ else [])))


def check_model(bundle: Path, name: str, golden: dict, manifest: dict) -> Check:
    """Run the stored ids through ``name`` one sentence at a time; logits within the golden tolerance."""
    atol = float(golden["atol"])
    try:
        sess = onnxrun.session(bundle / name)
    except CompressError as exc:  # a damaged graph: the line names the file, as the bundle lists it
        return Check(name, "cannot be loaded", exc.problems[0].replace(str(bundle / name), name, 1))
    expected_inputs = [t["name"] for t in manifest.get("inputs", [])]
    found_inputs = [i.name for i in sess.get_inputs()]
    if expected_inputs and found_inputs != expected_inputs:
        return Check(name, f"inputs {found_inputs}", f"{name}: inputs {found_inputs}, {MANIFEST_FILE} says {expected_inputs}")
    output = golden.get("output", "logits")
    worst, worst_i, bad, top1 = -1.0, 0, 0, 0
    for i, s in enumerate(golden["samples"]):
        ids = np.asarray([s["input_ids"]], dtype=np.int64)
        mask = np.asarray([s["attention_mask"]], dtype=np.int64)
        try:
            got = sess.run([output], onnxrun.feeds(sess, ids, mask))[0][0]
        except Exception as exc:  # a corrupted graph may load and still fail to run
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Check(name, "fails to run", f"{name}: fails on golden text {i} ({first[:200]})")
        want = np.asarray(s["logits"], dtype=np.float32)
        if got.shape != want.shape:
            return Check(name, f"output shape {got.shape}", f"{name}: {output} of golden text {i} has shape {got.shape}, "
                         f"{GOLDEN_FILE} has {want.shape}")
        diff = float(np.abs(got - want).max())
        bad += diff > atol
        top1 += int(got.argmax() == want.argmax())
        if diff > worst:
            worst, worst_i = diff, i
    n = len(golden["samples"])
    detail = f"{n} golden texts, {output} max diff {worst:.2e} (tolerance {atol:g}), top-1 {top1}/{n}"
    if not bad:
        return Check(name, detail)
    text = golden["samples"][worst_i]["text"]
    return Check(name, detail, f"{name}: {output} differ from {GOLDEN_FILE} by up to {worst:.3g} (tolerance {atol:g}) "
                 f"on {bad} of {n} golden texts, worst text {worst_i} ({text[:50]!r})")
