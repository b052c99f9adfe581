"""Shared inputs for the app's unit tests: settings, real SSH public keys, a valid request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from provisioning.settings import Settings, load_settings

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def openssh_public(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


@pytest.fixture(scope="session")
def rsa_key() -> str:
    return openssh_public(rsa.generate_private_key(public_exponent=65537, key_size=2048)) + " alice@example"


@pytest.fixture(scope="session")
def small_rsa_key() -> str:
    return openssh_public(rsa.generate_private_key(public_exponent=65537, key_size=1024))


@pytest.fixture(scope="session")
def ed25519_key() -> str:
    return openssh_public(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(scope="session")
def ecdsa_key() -> str:
    return openssh_public(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def settings() -> Settings:
    return load_settings({"MAX_NODES_PER_REQUEST": "10", "MAX_ACCESS_DURATION": "P2D"})


@pytest.fixture
def settings_with_passwords() -> Settings:
    return load_settings({"PASSWORD_ENCRYPTION_KEY": Fernet.generate_key().decode()})


@pytest.fixture
def valid_request(rsa_key) -> dict:
    return {
        "requestId": "req-1",
        "poolId": "pool-1",
        "vmSize": "Standard_D2s_v3",
        "nodes": {"dedicated": 2, "spot": 1},
        "image": {"os": "ubuntu", "version": "24.04"},
        "startTask": {
            "commandLine": "echo hi",
            "elevated": True,
            "waitForSuccess": True,
            "environment": {"A": "1"},
        },
        "ssh": {"frontendPortRange": {"start": 40000, "end": 40099}, "allowedSourcePrefixes": ["10.0.0.0/8"]},
        "users": [{"name": "alice", "sshPublicKey": rsa_key, "admin": True, "expiry": "PT8H"}],
    }
