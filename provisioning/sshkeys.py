"""SSH public key parsing: accepted types and sizes, the OpenSSH SHA256 fingerprint, and warnings."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

MIN_RSA_BITS = 2048


class KeyRejected(ValueError):
    """The text is not an acceptable SSH public key; the message states the rule."""


@dataclass(frozen=True)
class PublicKeyInfo:
    key_type: str  # "rsa" | "ecdsa" | "ed25519"
    bits: int
    fingerprint: str  # "SHA256:..." as `ssh-keygen -lf` prints it
    openssh: str  # "<algorithm> <base64>" without the comment
    warning: str | None


def _fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def parse_public_key(text: str) -> PublicKeyInfo:
    """Parse one OpenSSH public key line (`ssh-rsa AAAA... comment`); KeyRejected names the rule."""
    line = text.strip()
    if "PRIVATE KEY" in line:
        raise KeyRejected("must be a public key (the .pub file), never a private key")
    if "\n" in line or "\r" in line:
        raise KeyRejected("must be a single line in OpenSSH format (`ssh-rsa AAAA... comment`)")
    fields = line.split()
    if len(fields) < 2:
        raise KeyRejected("must be in OpenSSH format: `<type> <base64> [comment]`")
    if fields[0] == "ssh-dss":
        raise KeyRejected("must be an RSA (2048 bits or more), ECDSA or Ed25519 key (DSA keys are obsolete)")
    try:
        blob = base64.b64decode(fields[1], validate=True)
        key = serialization.load_ssh_public_key(f"{fields[0]} {fields[1]}".encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise KeyRejected(
            "must be in OpenSSH format: `<type> <base64> [comment]` (the key data did not parse)"
        ) from exc
    except UnsupportedAlgorithm as exc:
        raise KeyRejected("must be an RSA (2048 bits or more), ECDSA or Ed25519 key") from exc
    openssh = f"{fields[0]} {fields[1]}"
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyRejected(
                f"must be an RSA key of at least {MIN_RSA_BITS} bits (this one has {key.key_size})"
            )
        return PublicKeyInfo("rsa", key.key_size, _fingerprint(blob), openssh, None)
    warning = (
        "Azure Batch documents RSA keys for Linux node users; {} keys may be refused by some node agents"
    )
    if isinstance(key, ec.EllipticCurvePublicKey):
        return PublicKeyInfo(
            "ecdsa", key.curve.key_size, _fingerprint(blob), openssh, warning.format("ECDSA")
        )
    if isinstance(key, ed25519.Ed25519PublicKey):
        return PublicKeyInfo("ed25519", 256, _fingerprint(blob), openssh, warning.format("Ed25519"))
    raise KeyRejected("must be an RSA (2048 bits or more), ECDSA or Ed25519 key")
