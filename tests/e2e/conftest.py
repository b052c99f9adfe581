"""The whole dev stack for end-to-end tests: Azurite, the Batch emulator and the Functions host running this
repository's function_app.py; helpers to send requests, wait for outcomes, read events and log in with ssh."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from cryptography.fernet import Fernet

from devstack.batch_emulator.sdk_pools import newest_verified_ubuntu, ssh_pool
from devstack.functions_host.launcher import HostEndpoint, start_functions_host
from devstack.process import free_port, wait_until
from devstack.ssh_client import SshKey, generate_key, run_ssh
from provisioning.progress import TERMINAL_PHASES

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((REPO_ROOT / "examples" / "request.json").read_text())
PASSWORD_KEY = Fernet.generate_key().decode()


# The name the e2e tests import: the system OpenSSH client, non-interactive.
ssh = run_ssh


@dataclass
class AppStack:
    host: HostEndpoint
    batch: Any
    connection_string: str
    log_path: Path
    request_queue: str | None = None
    events_queue: str | None = None
    events: list[dict] = field(default_factory=list)

    def queue(self, name: str) -> QueueClient:
        client = QueueClient.from_connection_string(
            self.connection_string,
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        return client

    def send(self, request: dict | str) -> None:
        """Put a request on the request queue as another system would (base64 text)."""
        body = request if isinstance(request, str) else json.dumps(request)
        self.queue(self.request_queue or "pool-requests").send_message(body)

    def pool(self, pool_id: str) -> tuple[int, Any]:
        status, _, body = self.host.request("GET", f"/api/pools/{pool_id}")
        return status, body

    def wait_for_phase(self, pool_id: str, timeout: float = 180) -> dict:
        """GET /api/pools/{poolId} until the phase is terminal (completed, partial, failed, rejected)."""
        seen: dict = {}

        def terminal() -> bool:
            status, body = self.pool(pool_id)
            seen["body"] = body
            return status == 200 and body.get("phase") in TERMINAL_PHASES

        try:
            wait_until(terminal, timeout, f"pool {pool_id} to reach a terminal phase", interval=0.25)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last answer: {seen.get('body')}") from None
        return seen["body"]

    def connections(self, pool_id: str, fmt: str | None = None) -> tuple[int, Any]:
        suffix = f"?format={fmt}" if fmt else ""
        status, _, body = self.host.request("GET", f"/api/pools/{pool_id}/connections{suffix}")
        return status, body

    def drain_events(self) -> list[dict]:
        """Every event published so far (read and removed from the events queue, kept here)."""
        queue = self.queue(self.events_queue or "pool-events")
        while True:
            batch = list(queue.receive_messages(max_messages=32, visibility_timeout=60))
            if not batch:
                return self.events
            for message in batch:
                self.events.append(json.loads(message.content))
                queue.delete_message(message)

    def wait_for_event(self, predicate, what: str, timeout: float = 60) -> dict:
        def found() -> bool:
            return any(predicate(e) for e in self.drain_events())

        try:
            wait_until(found, timeout, what, interval=0.25)
        except TimeoutError as exc:
            seen = sorted({(e.get("type"), e.get("poolId")) for e in self.events}, key=str)
            raise TimeoutError(f"{exc}; events seen: {seen}") from None
        return next(e for e in self.events if predicate(e))

    def host_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def grant(self, pool_id: str, users: list[dict], **body: Any) -> tuple[int, Any]:
        """POST /api/pools/{poolId}/access."""
        status, _, answer = self.host.request(
            "POST", f"/api/pools/{pool_id}/access", json={"users": users, **body}
        )
        return status, answer

    def finished(self, answer: dict, timeout: float = 120) -> dict:
        """The output of the orchestration a 202 answer started, once it has finished."""
        status = self.host.wait_for_instance(answer["instanceId"], timeout)
        assert status["runtimeStatus"] == "Completed", status
        return status["output"]

    def records(self, pool_id: str) -> dict[tuple[str, str], dict]:
        """{(nodeId, user): record} of a pool, every state."""
        _, body = self.connections(pool_id)
        return {(r["nodeId"], r["user"]): r for r in body["connections"]}

    def sdk_pool(self, pool_id: str, nodes: int) -> list[str]:
        """A pool created directly through the Batch SDK (not by the app), with an SSH NAT pool; its node ids
        once they are idle."""
        client = self.batch.client()
        client.create_pool(ssh_pool(pool_id, newest_verified_ubuntu(client), nodes, "echo ready"))
        return self.idle_nodes(pool_id, nodes)

    def idle_nodes(self, pool_id: str, count: int) -> list[str]:
        def ready() -> bool:
            nodes = self.batch.pool_nodes(pool_id)["nodes"]
            return len(nodes) == count and all(n["state"] == "idle" for n in nodes)

        wait_until(ready, 60, f"{count} idle nodes in pool {pool_id}", interval=0.25)
        return sorted(n["id"] for n in self.batch.pool_nodes(pool_id)["nodes"])


@pytest.fixture(scope="session")
def stack(tmp_path_factory, azurite, batch_emulator) -> AppStack:
    """The app on the local host, pointed at this session's Azurite and emulator; fast polling and cleanup."""
    env = {
        "IDLE_POLL_INTERVAL": "PT0.5S/PT1S",
        "PROVISION_DEADLINE": "PT5M",
        "MAX_NODES_PER_REQUEST": "10",
        "MAX_ACCESS_DURATION": "P1D",
        "CLEANUP_SCHEDULE": "*/2 * * * * *",
        # Reconcile would add Batch calls to every test; the reconcile tests run their own host.
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "PASSWORD_ENCRYPTION_KEY": PASSWORD_KEY,
        "DELETE_POOL_ON_FAILURE": "false",
    }
    with app_host(tmp_path_factory, azurite, batch_emulator, env) as stack:
        yield stack


@contextlib.contextmanager
def app_host(tmp_path_factory, azurite, batch_emulator, env: dict[str, str]) -> Iterator[AppStack]:
    """The app on a local host with these settings (on top of the services'), stopped afterwards."""
    work = tmp_path_factory.mktemp("e2e-host")
    port = free_port()
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "BATCH_ACCOUNT_URL": batch_emulator.url,
        "BATCH_ACCOUNT_NAME": batch_emulator.account,
        "BATCH_ACCOUNT_KEY": batch_emulator.key,
        "APP_BASE_URL": f"http://127.0.0.1:{port}",
        **env,
    }
    log_path = work / "functions-host.log"
    process, host = start_functions_host(
        REPO_ROOT, port=port, env=env, data_dir=work / "data", log_path=log_path
    )
    try:
        yield AppStack(
            host,
            batch_emulator,
            azurite.connection_string,
            log_path,
            request_queue=env.get("REQUEST_QUEUE_NAME"),
            events_queue=env.get("EVENTS_QUEUE_NAME"),
        )
    finally:
        process.stop()


@pytest.fixture
def keys(tmp_path) -> dict[str, SshKey]:
    return {name: generate_key(tmp_path, name) for name in ("alice", "bob")}


def unique_pool(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def request_for(pool_id: str, users: list[dict], *, nodes: int = 3, **overrides: Any) -> dict:
    """The example request, for another pool and other users."""
    body = json.loads(json.dumps(EXAMPLE))
    body.pop("requestId")
    body.update(poolId=pool_id, users=users, nodes={"dedicated": nodes, "spot": 0}, **overrides)
    return body
