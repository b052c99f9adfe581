"""Fixtures and tools for tests that drive the Batch emulator with the real azure-batch SDK and the system
OpenSSH client."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from devstack.batch_emulator.launcher import BatchEmulatorEndpoint
from devstack.batch_emulator.sdk_pools import ssh_network
from devstack.process import wait_until
from devstack.ssh_client import SSH_OPTIONS, generate_key, scp_command


@pytest.fixture(scope="session")
def batch_client(batch_emulator: BatchEmulatorEndpoint) -> BatchClient:
    return batch_emulator.client()


@pytest.fixture(scope="session")
def ubuntu_image(batch_client: BatchClient) -> m.BatchSupportedImage:
    images = batch_client.list_supported_images(filter="verificationType eq 'verified' and osType eq 'linux'")
    current = [
        i
        for i in images
        if i.batch_support_end_of_life is None or i.batch_support_end_of_life > datetime.now(UTC)
    ]
    return max((i for i in current if "ubuntu" in i.node_agent_sku_id), key=lambda i: i.node_agent_sku_id)


def ssh_nat_pool(start: int = 40000, end: int = 40199, rules: list | None = None) -> m.NetworkConfiguration:
    return ssh_network(start, end, rules)


@pytest.fixture
def make_pool(batch_client: BatchClient, ubuntu_image: m.BatchSupportedImage):
    """make_pool(nodes=2, start_task=..., ssh=True, **options) -> pool id; every pool is deleted
    afterwards."""
    created: list[str] = []

    def make(
        nodes: int = 2,
        *,
        start_task: m.BatchStartTask | None = None,
        ssh: bool = True,
        network: m.NetworkConfiguration | None = None,
        **options,
    ) -> str:
        pool_id = f"t-{uuid.uuid4().hex[:12]}"
        batch_client.create_pool(
            m.BatchPoolCreateOptions(
                id=pool_id,
                vm_size="standard_d2s_v3",
                virtual_machine_configuration=m.VirtualMachineConfiguration(
                    image_reference=ubuntu_image.image_reference,
                    node_agent_sku_id=ubuntu_image.node_agent_sku_id,
                ),
                target_dedicated_nodes=nodes,
                start_task=start_task,
                network_configuration=network or (ssh_nat_pool() if ssh else None),
                **options,
            )
        )
        created.append(pool_id)
        return pool_id

    yield make
    for pool_id in created:
        # The plain REST delete: no poller thread left behind; 404 (or 409 PoolBeingDeleted) when the test
        # deleted it already.
        with contextlib.suppress(ResourceNotFoundError, ResourceExistsError):
            batch_client.send_request(HttpRequest("DELETE", f"/pools/{pool_id}?api-version=2025-06-01"))


@pytest.fixture
def wait_for_nodes(batch_client: BatchClient) -> Callable[..., list[m.BatchNode]]:
    """wait_for_nodes(pool_id, count, states={'idle'}) -> the nodes once `count` of them are in those
    states."""

    def wait(
        pool_id: str, count: int, states: set[str] | None = None, timeout: float = 60
    ) -> list[m.BatchNode]:
        wanted = states or {"idle"}
        found: list[m.BatchNode] = []

        def ready() -> bool:
            nonlocal found
            found = list(batch_client.list_nodes(pool_id))
            return len(found) == count and all(n.state in wanted for n in found)

        wait_until(ready, timeout, f"{count} nodes of {pool_id} in {sorted(wanted)}", interval=0.05)
        return found

    return wait


@pytest.fixture(scope="session")
def rsa_key(tmp_path_factory) -> Path:
    """A fresh RSA key pair (ssh-keygen); the public half is next to it as .pub."""
    return generate_key(tmp_path_factory.mktemp("keys")).private


@pytest.fixture(scope="session")
def other_rsa_key(tmp_path_factory) -> Path:
    return generate_key(tmp_path_factory.mktemp("keys-other")).private


def public_key(key: Path) -> str:
    return key.with_suffix(".pub").read_text().strip()


def ssh_argv(key: Path, user: str, ip: str, port: int, *command: str, tty: bool = False) -> list[str]:
    """Like devstack.ssh_client.ssh_command, with any number of command words (none: a login shell) and an
    optional forced tty (-tt)."""
    tty_flag = ["-tt"] if tty else []
    return ["ssh", *tty_flag, "-i", str(key), "-p", str(port), *SSH_OPTIONS, f"{user}@{ip}", *command]


def ssh(
    key: Path, user: str, ip: str, port: int, *command: str, input: str | None = None, tty: bool = False
) -> subprocess.CompletedProcess:
    argv = ssh_argv(key, user, ip, port, *command, tty=tty)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, input=input)


def scp(key: Path, port: int, *args: str, legacy: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        scp_command(key, port, *args, legacy=legacy), capture_output=True, text=True, timeout=60
    )


def add_user(
    client: BatchClient,
    pool_id: str,
    node_id: str,
    name: str,
    key: Path | None = None,
    *,
    password: str | None = None,
    expires_in: timedelta = timedelta(hours=1),
) -> None:
    client.create_node_user(
        pool_id,
        node_id,
        m.BatchNodeUserCreateOptions(
            name=name,
            is_admin=False,
            expiry_time=datetime.now(UTC) + expires_in,
            ssh_public_key=public_key(key) if key else None,
            password=password,
        ),
    )


def processes_with(token: str) -> list[int]:
    """PIDs of the processes whose command line contains `token` (start tasks, remote commands)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class Tools:
    """The functions above, for test modules (they take them as the `tools` fixture)."""

    ssh = staticmethod(ssh)
    ssh_argv = staticmethod(ssh_argv)
    scp = staticmethod(scp)
    add_user = staticmethod(add_user)
    public_key = staticmethod(public_key)
    ssh_nat_pool = staticmethod(ssh_nat_pool)


@pytest.fixture(scope="session")
def tools() -> type[Tools]:
    return Tools
