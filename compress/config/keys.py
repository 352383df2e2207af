"""The PEM key files a config or a command names: ``ship.sign_key`` (the ship stage signs the bundle with it),
``compress sign --key`` (a private key) and ``compress verify --key`` (a public key). A key is read with the
``cryptography`` package, which the ``model-signing`` package (``pip install 'compress[sign]'``) brings; nothing
else is loaded. model-signing signs with elliptic-curve keys on the NIST curves P-256, P-384 and P-521.

Make a key pair with openssl (``ecparam`` writes the private key, ``ec -pubout`` its public half)::

    openssl ecparam -name prime256v1 -genkey -noout -out private.pem
    openssl ec -in private.pem -pubout -out public.pem
"""

from __future__ import annotations

from pathlib import Path

CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}  # the curves model-signing signs with
INSTALL = "pip install 'compress[sign]'"
MAKE_KEYS = ("openssl ecparam -name prime256v1 -genkey -noout -out private.pem; "
             "openssl ec -in private.pem -pubout -out public.pem")


def key_problem(path: str | Path, private: bool) -> str | None:
    """Why ``path`` is not a usable key (what was found, what is expected), or None. ``private``: a signing key
    (PEM private key, unencrypted); else a verifying one (PEM public key)."""
    kind = "private" if private else "public"
    path = Path(path).expanduser()
    if not path.exists():
        return f"{path}: not found; expected a PEM elliptic-curve {kind} key (make a pair with: {MAKE_KEYS})"
    if not path.is_file():
        return f"{path}: not a file; expected a PEM elliptic-curve {kind} key"
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        return f"{path}: signing needs the model-signing package, which is not installed: {INSTALL}"
    data = path.read_bytes()[: 1 << 20]
    if b"-----BEGIN " not in data:
        return f"{path}: not a PEM file (no -----BEGIN line); expected a PEM elliptic-curve {kind} key"
    key = _load(serialization, data, private)
    if isinstance(key, str):
        return f"{path}: {key}"
    public = key.public_key() if private else key
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return (f"{path}: not an elliptic-curve key ({type(public).__name__.removesuffix('PublicKey')}); "
                f"model-signing signs with elliptic-curve keys ({', '.join(CURVES.values())})")
    if public.curve.name not in CURVES:
        return f"{path}: an elliptic-curve key on {public.curve.name}; model-signing takes {', '.join(CURVES.values())}"
    return None


def _load(serialization, data: bytes, private: bool):
    """The key, or why it cannot be read as the kind asked for (a public key given for a private one, ...)."""
    if private:
        try:
            return serialization.load_pem_private_key(data, password=None)
        except TypeError:  # "Password was not given but private key is encrypted"
            return "an encrypted private key; compress signs with an unencrypted one (openssl ec -in it -out plain.pem)"
        except ValueError:
            pass
        try:
            serialization.load_pem_public_key(data)
            return "a public key; signing needs the private key (its public half is for compress verify --key)"
        except ValueError:
            return "not a PEM private key cryptography can read; expected a PEM elliptic-curve private key"
    try:
        return serialization.load_pem_public_key(data)
    except ValueError:
        pass
    try:
        serialization.load_pem_private_key(data, password=None)
    except (TypeError, ValueError):
        return "not a PEM public key cryptography can read; expected a PEM elliptic-curve public key"
    return ("a private key; checking a signature needs only the public key, which is all a device should hold "
            "(openssl ec -in private.pem -pubout -out public.pem)")
