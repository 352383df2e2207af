"""Signed bundles (issue 27): the OpenSSF model-signing format with a local elliptic-curve key pair. A signed
bundle verifies with the right key (compress verify --key, load_bundle(public_key=)); the wrong key, any changed
byte of any file, a file added or removed, a changed signature each fail with a line that says which. Keys are
made here with the cryptography package."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from compress.errors import CompressError
from compress.verify import load_bundle

from ..conftest import ROOT, invoke, read_json

FILES = ["README.md", "config.json", "golden.json", "manifest.json", "model.onnx", "model.ort",
         "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]


def key_pair(folder: Path, name: str, curve=None) -> tuple[Path, Path]:
    """A PEM private key (PKCS#8, unencrypted) and its public key (SubjectPublicKeyInfo)."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def signed(tiny_shipped, tmp_path_factory):
    """The shared bundle signed with ``compress sign``; returns (bundle, private key, public key). Read-only."""
    _, bundle, _ = tiny_shipped
    base = tmp_path_factory.mktemp("signed")
    private, public = key_pair(base, "maker")
    copy = shutil.copytree(bundle, base / "bundle")
    result = invoke("sign", copy, "--key", private)
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.startswith(f"sign: {copy / 'model.sig'}")
    return copy, private, public


def copy_signed(signed, tmp_path) -> Path:
    return shutil.copytree(signed[0], tmp_path / "bundle")


def signature_error(bundle: Path, public: Path) -> str:
    """verify --key fails; returns its model.sig line."""
    result = invoke("verify", bundle, "--key", public)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = [e for e in result.stderr.splitlines() if e.startswith("error: model.sig: ")]
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("error: ")


def test_a_signed_bundle_verifies_with_the_right_key(signed):
    bundle, _, public = signed
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*FILES, "model.sig"])
    assert "model.sig" not in read_json(bundle / "manifest.json")["files"]  # it signs the manifest: it cannot be listed
    statement = json.loads(base64.b64decode(read_json(bundle / "model.sig")["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"  # the OpenSSF format
    assert sorted(r["name"] for r in statement["predicate"]["resources"]) == FILES  # every file but model.sig
    result = invoke("verify", bundle, "--key", public)
    assert result.exit_code == 0, result.output + result.stderr
    assert "-[ok] model.sig: signed by the key of maker.pub.pem (sha256:" in result.stdout
    assert "every file covered" in result.stdout and result.stdout.rstrip().endswith("verify: ok (13 checks)")
    assert load_bundle(bundle, public_key=public).logits(["a good film"]).shape == (1, 2)


def test_without_key_a_signed_bundle_is_said_to_be_signed_but_unchecked(signed):
    bundle, _, _ = signed
    result = invoke("verify", bundle)
    assert result.exit_code == 0, result.output
    assert "verify: signed (model.sig, key sha256:" in result.stdout
    assert "but the signature is not checked; check it with: compress verify" in result.stdout
    assert "-[ok] model.sig" not in result.stdout


def test_the_wrong_key_is_named(signed, tmp_path):
    bundle, _, _ = signed
    _, other = key_pair(tmp_path, "other")
    line = signature_error(bundle, other)
    assert line.startswith(f"model.sig: signed with another key than {other} (the signature names key sha256:"), line
    with pytest.raises(CompressError, match="^model.sig: signed with another key"):
        load_bundle(bundle, public_key=other)


@pytest.mark.parametrize("name", FILES)
def test_any_changed_byte_of_any_file_is_named(signed, tmp_path, name):
    bundle = copy_signed(signed, tmp_path)
    path = bundle / name
    if name == "manifest.json":  # still a manifest (a broken one is refused before the signature is read)
        manifest = read_json(path)
        manifest["name"] += "-changed"
        path.write_text(json.dumps(manifest, indent=1))
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    line = signature_error(bundle, signed[2])
    assert line == f"model.sig: signed by maker.pub.pem's key, but the bundle is not what was signed: changed since " \
                   f"it was signed: {name}", line


def test_a_file_added_or_removed_is_named(signed, tmp_path):
    bundle = copy_signed(signed, tmp_path)
    (bundle / "extra.txt").write_text("added after signing\n")
    assert signature_error(bundle, signed[2]).endswith("the bundle is not what was signed: added after signing: "
                                                       "extra.txt")
    (bundle / "extra.txt").unlink()
    (bundle / "README.md").unlink()
    assert signature_error(bundle, signed[2]).endswith("the bundle is not what was signed: removed after signing: "
                                                       "README.md")


def test_a_changed_signature_does_not_verify(signed, tmp_path):
    bundle = copy_signed(signed, tmp_path)
    sig = read_json(bundle / "model.sig")
    value = sig["dsseEnvelope"]["signatures"][0]["sig"]
    sig["dsseEnvelope"]["signatures"][0]["sig"] = value[:8] + ("A" if value[8] != "A" else "B") + value[9:]
    (bundle / "model.sig").write_text(json.dumps(sig))
    assert signature_error(bundle, signed[2]).startswith("model.sig: the signature does not verify with ")
    (bundle / "model.sig").write_text("{not json")
    assert signature_error(bundle, signed[2]).startswith("model.sig: not a readable model-signing signature")


def test_key_on_an_unsigned_bundle_and_bad_keys(tiny_shipped, signed, tmp_path):
    _, bundle, _ = tiny_shipped
    line = signature_error(bundle, signed[2])
    assert line.startswith(f"model.sig: {bundle} is not signed (no model.sig); sign it with: compress sign"), line
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    for key, says in [(signed[1], "a private key; checking a signature needs only the public key"),
                      (tmp_path / "none.pem", "not found; expected a PEM elliptic-curve public key"),
                      (rsa_key, "not an elliptic-curve key (RSA)"),
                      (ROOT / "README.md", "not a PEM file")]:
        result = invoke("verify", signed[0], "--key", key)
        assert result.exit_code == 2 and result.stdout == "", result.output  # refused before anything is checked
        assert result.stderr.startswith(f"error: --key: {key}: ") and len(result.stderr.splitlines()) == 1
        assert says in result.stderr, result.stderr


def test_sign_refuses_a_bundle_that_does_not_verify(tiny_shipped, signed, tmp_path):
    _, bundle, _ = tiny_shipped
    copy = shutil.copytree(bundle, tmp_path / "bundle")
    (copy / "config.json").write_text("{}")
    result = invoke("sign", copy, "--key", signed[1])
    assert result.exit_code == 2
    assert "error: config.json: " in result.stderr and "not signed: it does not verify" in result.stderr
    assert not (copy / "model.sig").exists()
    result = invoke("sign", copy, "--key", signed[2])  # a public key cannot sign
    assert result.exit_code == 2 and "a public key; signing needs the private key" in result.stderr


def test_the_ship_stage_signs_with_ship_sign_key(tiny_shipped, signed, tmp_path):
    """On a copy of the shared run: only the ship stage reruns (its config changed), and signs the bundle."""
    run_dir, _, overrides = tiny_shipped
    _, private, public = signed
    shutil.copytree(run_dir.parent, tmp_path / "runs")
    kept = [o for o in overrides if not o.startswith("ship.dir=")]
    result = invoke("run", ROOT / "pipelines" / "tiny.yaml", "--runs-dir", tmp_path / "runs",
                    f"ship.dir={tmp_path / 'exports'}", f"ship.sign_key={private}", *kept)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    assert {line.split()[1] for line in result.output.splitlines() if line.startswith("done ")} == {"ship"}
    assert read_json(tmp_path / "runs" / "tiny" / "ship" / "stage.json")["metrics"]["signed"] is True
    bundle = tmp_path / "exports" / "tiny"
    assert "compress verify <this folder> --key public.pem" in (bundle / "README.md").read_text()
    verified = invoke("verify", bundle, "--key", public)
    assert verified.exit_code == 0, verified.output + verified.stderr
    statement = json.loads(base64.b64decode(read_json(bundle / "model.sig")["dsseEnvelope"]["payload"]))
    assert statement["subject"][0]["name"] == "tiny"  # signed once the folder had its name


@pytest.mark.parametrize("given", ["public", "missing", "folder", "secp256k1"])
def test_a_bad_ship_sign_key_is_refused_at_load(tmp_path, given):
    private, public = key_pair(tmp_path, "k1", ec.SECP256K1()) if given == "secp256k1" else key_pair(tmp_path, "p")
    key = {"public": public, "missing": tmp_path / "none.pem", "folder": tmp_path, "secp256k1": private}[given]
    result = invoke("validate", ROOT / "pipelines" / "tiny.yaml", f"ship.sign_key={key}")
    assert result.exit_code == 2, result.output
    says = {"public": "a public key; signing needs the private key", "missing": "not found; expected a PEM "
            "elliptic-curve private key", "folder": "not a file", "secp256k1": "an elliptic-curve key on secp256k1"}
    assert result.stderr.startswith(f"error: ship.sign_key: {key}: ") and len(result.stderr.splitlines()) == 1
    assert says[given] in result.stderr, result.stderr


def test_a_signature_that_leaves_a_file_out_is_refused(signed, tmp_path):
    """model-signing can be told to skip files (ignore_paths): signed by the right key, but not over the whole
    bundle. compress never signs so; verify --key names what the signature leaves out."""
    from model_signing import hashing, signing

    bundle = copy_signed(signed, tmp_path)
    signing.Config().use_elliptic_key_signer(private_key=signed[1]).set_hashing_config(
        hashing.Config().set_ignored_paths(paths=["model.sig", "README.md"], ignore_git_paths=False)
    ).sign(bundle, bundle / "model.sig")
    assert signature_error(bundle, signed[2]).startswith("model.sig: signed by maker.pub.pem's key, but the signature "
                                                         "leaves out README.md")
