"""Activities run in-process against the Batch emulator and Azurite, with the app's settings in the env."""

from __future__ import annotations

import uuid

import pytest
from cryptography.fernet import Fernet

from devstack.process import wait_until
from devstack.ssh_client import SshKey, generate_key, run_ssh
from provisioning.nodes import wait_decision
from provisioning.settings import Settings, load_settings

# The name the activity tests import.
ssh_run = run_ssh


@pytest.fixture
def app_env(monkeypatch, batch_emulator, azurite) -> Settings:
    """App settings pointing at the emulator and Azurite, with tables and queues of this test's own."""
    suffix = uuid.uuid4().hex[:10]
    env = {
        "BATCH_ACCOUNT_URL": batch_emulator.url,
        "BATCH_ACCOUNT_NAME": batch_emulator.account,
        "BATCH_ACCOUNT_KEY": batch_emulator.key,
        "AzureWebJobsStorage": azurite.connection_string,
        "CONNECTIONS_TABLE_NAME": f"conn{suffix}",
        "REQUESTS_TABLE_NAME": f"req{suffix}",
        "EVENTS_QUEUE_NAME": f"events-{suffix}",
        "PASSWORD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.fixture
def ssh_key(tmp_path) -> SshKey:
    return generate_key(tmp_path)


def unique_pool(prefix: str = "it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for_settled(poll, pool_id: str, timeout: float = 60) -> dict:
    """Poll the pool with the app's own activity until the wait decision is no longer `wait`."""
    seen: dict = {}

    def settled() -> bool:
        seen["snapshot"] = poll({"poolId": pool_id})
        return wait_decision(seen["snapshot"], deadline_passed=False)["action"] != "wait"

    wait_until(settled, timeout, f"pool {pool_id} to settle")
    return seen["snapshot"]
