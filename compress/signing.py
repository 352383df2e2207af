"""A bundle's signature in the OpenSSF model-signing format: who made this bundle, checked on the device.

The ``model-signing`` package (``pip install 'compress[sign]'``) signs the bundle folder with a local
elliptic-curve private key: the sha256 of every file but the signature itself (``manifest.json`` included, so
the golden set and the file list are signed too), as an in-toto statement in a DSSE envelope, written as a
Sigstore bundle to ``model.sig`` (model-signing's default name). ``compress verify BUNDLE --key public.pem``
checks it with the public key; a wrong key, a changed byte, a file added or removed each fail with their reason.
Nothing here leaves the machine: no transparency log, no certificate authority, just the key pair.

model-signing is imported only when a key is used: ``compress verify`` without ``--key`` reads model.sig as
JSON to say that the bundle is signed, and by which key (the sha256 of its public key, model-signing's hint).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from compress.config.keys import INSTALL, key_problem
from compress.errors import CompressError
from compress.io import sha256_file
from compress.layout import SIGNATURE_FILE
from compress.records import Check

FORMAT = "OpenSSF model-signing, elliptic-curve key"


def _hashing():
    """Every file of the bundle but model.sig (git's files too: a bundle has none, and a signature covers all)."""
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False)


def _model_signing():
    try:
        import model_signing  # noqa: F401
    except ImportError as exc:
        raise CompressError(f"signing: the model-signing package is not installed ({exc}); {INSTALL}") from None
    return model_signing


def sign_bundle(bundle: Path, private_key: str | Path, what: str = "--key") -> Path:
    """Write ``bundle/model.sig``: every file of the bundle signed with ``private_key`` (a PEM elliptic-curve
    private key). ``what`` names the setting the key came from in an error (ship.sign_key, --key)."""
    problem = key_problem(private_key, private=True)
    if problem:
        raise CompressError(f"{what}: {problem}")
    signing = _model_signing().signing
    target = Path(bundle) / SIGNATURE_FILE
    target.unlink(missing_ok=True)  # a signature of an earlier state of the folder is not signed over
    signing.Config().use_elliptic_key_signer(private_key=Path(private_key).expanduser()).set_hashing_config(
        _hashing()).sign(Path(bundle), target)
    return target


def key_hint(public_key_pem: bytes) -> str:
    """The key's name in a signature: sha256 of its PEM SubjectPublicKeyInfo (model-signing's hint)."""
    return hashlib.sha256(public_key_pem).hexdigest()


def public_hint(path: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(Path(path).expanduser().read_bytes())
    return key_hint(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def signed_by(bundle: Path) -> str | None:
    """The key hint model.sig names (read as JSON, nothing verified), '' when it names none, None when unsigned."""
    path = Path(bundle) / SIGNATURE_FILE
    if not path.is_file() or path.is_symlink():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))["verificationMaterial"]["publicKey"]["hint"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return ""
    return found if isinstance(found, str) else ""


def _signed_files(path: Path) -> dict[str, str]:
    """{file: sha256} of the statement in model.sig (read once model-signing has checked its signature)."""
    envelope = json.loads(path.read_text(encoding="utf-8"))["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}


def _differences(bundle: Path, signed: dict[str, str]) -> str:
    """What changed since signing: files changed, added, removed (each named)."""
    present = {p.relative_to(bundle).as_posix(): p for p in sorted(bundle.rglob("*")) if p.is_file()}
    present.pop(SIGNATURE_FILE, None)
    changed = [n for n in sorted(signed) if n in present and sha256_file(present[n]) != signed[n]]
    added = sorted(set(present) - set(signed))
    removed = sorted(set(signed) - set(present))
    parts = ([f"changed since it was signed: {', '.join(changed)}"] if changed else []) + \
            ([f"added after signing: {', '.join(added)}"] if added else []) + \
            ([f"removed after signing: {', '.join(removed)}"] if removed else [])
    return "; ".join(parts) or "the files differ from what was signed"


def check_signature(bundle: Path, public_key: str | Path) -> Check:
    """model.sig checked with ``public_key``: signed by its private key, over exactly the files the bundle holds
    now (every byte of each). The failing line says which: another key, a changed signature, a file changed,
    added or removed."""
    bundle, key = Path(bundle), Path(public_key).expanduser()
    what = SIGNATURE_FILE
    problem = key_problem(key, private=False)
    if problem:
        raise CompressError(f"--key: {problem}")
    path = bundle / SIGNATURE_FILE
    if path.is_symlink() or not path.is_file():
        return Check(what, "not signed", f"{what}: {bundle} is not signed (no {SIGNATURE_FILE}); sign it with: "
                     f"compress sign {bundle} --key PRIVATE.pem")
    verifying = _model_signing().verifying
    from cryptography.exceptions import InvalidSignature

    named = signed_by(bundle)
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=key).set_hashing_config(_hashing()).verify(bundle, path)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:  # not a Sigstore bundle's JSON
        return Check(what, "unreadable", f"{what}: not a readable model-signing signature ({type(exc).__name__}: "
                     f"{str(exc)[:160]}); sign the bundle again: compress sign {bundle} --key PRIVATE.pem")
    except InvalidSignature:
        return Check(what, "does not verify", f"{what}: the signature does not verify with {key}: it was made with "
                     "another key, or model.sig was changed since")
    except ValueError as exc:
        text = str(exc)
        if text.startswith("Key mismatch"):
            return Check(what, "another key", f"{what}: signed with another key than {key} (the signature names key "
                         f"sha256:{named[:16]}, {key.name} is sha256:{public_hint(key)[:16]})")
        if text.startswith("Signature mismatch"):  # the signature itself is good: the statement can be read
            return Check(what, "the bundle changed", f"{what}: signed by {key.name}'s key, but the bundle is not what "
                         f"was signed: {_differences(bundle, _signed_files(path))}")
        return Check(what, "cannot be checked", f"{what}: cannot be checked with {key} ({text[:200]})")
    except Exception as exc:  # a damaged model.sig: JSON, base64 or protobuf errors, with no common base class
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Check(what, "unreadable", f"{what}: not a readable model-signing signature ({type(exc).__name__}: "
                     f"{first[:160]}); sign the bundle again: compress sign {bundle} --key PRIVATE.pem")
    present = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {SIGNATURE_FILE}
    unsigned = sorted(present - set(_signed_files(path)))
    if unsigned:  # signed by the key, but made to leave files out (model-signing's ignore_paths): compress never does
        return Check(what, "leaves files out", f"{what}: signed by {key.name}'s key, but the signature leaves out "
                     f"{', '.join(unsigned)}; sign the whole bundle: compress sign {bundle} --key PRIVATE.pem")
    return Check(what, f"signed by the key of {key.name} (sha256:{public_hint(key)[:16]}), every file covered "
                 f"({FORMAT})")
