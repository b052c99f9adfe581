"""SIGKILL of the host while it provisions, revokes and cleans up, then a restart on the same data: each run
completes, and nothing is duplicated or left behind — one pool, each user once on each node with one record,
the revoked and the expired user gone from every node. Batch calls are slowed (emulator latency) so that each
kill lands while users are being created or deleted."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from pathlib import Path

import pytest

from devstack.batch_emulator.launcher import ControlError
from devstack.process import free_port, wait_until
from tests.fixtures.functions_host import RunningHost

from .conftest import REPO_ROOT, request_for, unique_pool

NODES = 4
LATENCY_MS = 600


@pytest.fixture
def crash_host(tmp_path: Path, azurite, emulator_faults_cleared):
    """The app on a host of its own (own tables and queues, so no other host's timers act on its records)."""
    port = free_port()
    tag = unique_pool("c").replace("-", "")
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "BATCH_ACCOUNT_URL": emulator_faults_cleared.url,
        "BATCH_ACCOUNT_NAME": emulator_faults_cleared.account,
        "BATCH_ACCOUNT_KEY": emulator_faults_cleared.key,
        "APP_BASE_URL": f"http://127.0.0.1:{port}",
        "IDLE_POLL_INTERVAL": "PT0.5S/PT1S",
        "MAX_ACCESS_DURATION": "P1D",
        "CLEANUP_SCHEDULE": "*/2 * * * * *",
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "CONNECTIONS_TABLE_NAME": f"conn{tag}",
        "REQUESTS_TABLE_NAME": f"req{tag}",
        "POOLS_TABLE_NAME": f"pools{tag}",
        "REQUEST_QUEUE_NAME": f"req-{tag}",
        "EVENTS_QUEUE_NAME": f"ev-{tag}",
    }
    host = RunningHost(REPO_ROOT, tmp_path / "data", tmp_path / "host.log", env, port=port)
    host.start()
    try:
        yield host
    finally:
        host.stop()


def users_on_nodes(batch, pool_id: str) -> dict[str, set[str]]:
    try:
        nodes = batch.pool_nodes(pool_id)["nodes"]
    except ControlError:  # the pool is not created yet
        return {}
    return {n["id"]: set(n["users"]) for n in nodes}


def count(batch, pool_id: str, user: str) -> int:
    return sum(user in users for users in users_on_nodes(batch, pool_id).values())


def records(host: RunningHost, pool_id: str) -> list[dict]:
    status, _, body = host.endpoint.request("GET", f"/api/pools/{pool_id}/connections")
    assert status == 200, body
    return body["connections"]


def calls(batch, operation: str) -> int:
    return batch.counters()["calls"].get(operation, 0)


def kill_when(host: RunningHost, condition, what: str) -> None:
    wait_until(condition, 120, what, interval=0.05)
    host.kill()


def assert_one_record_per_pair_and_none_missing(batch, host: RunningHost, pool_id: str) -> list[dict]:
    found = records(host, pool_id)
    pairs = Counter((r["nodeId"], r["user"]) for r in found)
    assert max(pairs.values()) == 1, pairs
    live = {(r["nodeId"], r["user"]) for r in found if r["state"] in ("pending", "active")}
    for node_id, users in users_on_nodes(batch, pool_id).items():
        assert {(node_id, u) for u in users} <= live, (node_id, users, found)
    return found


@pytest.mark.slow
def test_sigkill_during_provisioning_revoke_and_cleanup_then_restart(
    crash_host, emulator_faults_cleared, keys
):
    batch, pool_id = emulator_faults_cleared, unique_pool("crash")
    users = [
        {"name": "alice", "sshPublicKey": keys["alice"].public, "expiry": "PT12H"},
        {"name": "bob", "sshPublicKey": keys["bob"].public, "expiry": "PT75S"},
    ]
    batch.reset_counters()
    batch.inject_fault("create_node_user", latency_ms=LATENCY_MS)
    status, _, started = crash_host.endpoint.request(
        "POST", "/api/pools", json=request_for(pool_id, users, nodes=NODES)
    )
    assert status == 202, started

    # 1. provisioning: killed once alice exists on the nodes, with bob's creation in flight
    kill_when(crash_host, lambda: calls(batch, "create_node_user") > NODES, "bob's creation to be under way")
    crash_host.start()
    final = crash_host.endpoint.wait_for_instance(started["instanceId"], 300)
    assert final["runtimeStatus"] == "Completed" and final["output"]["outcome"] == "completed", final[
        "output"
    ]
    assert [p.id for p in batch.client().list_pools() if p.id == pool_id] == [pool_id]
    assert all(u == {"alice", "bob"} for u in users_on_nodes(batch, pool_id).values())
    found = assert_one_record_per_pair_and_none_missing(batch, crash_host, pool_id)
    assert len(found) == 2 * NODES and {r["state"] for r in found} == {"active"}

    # 2. revoke: killed while alice is being deleted from the nodes
    batch.clear_faults()
    batch.reset_counters()
    batch.inject_fault("delete_node_user", latency_ms=LATENCY_MS)

    def revoke() -> None:
        with contextlib.suppress(OSError):  # the host dies under the request
            crash_host.endpoint.request("DELETE", f"/api/pools/{pool_id}/users/alice", timeout=60)

    revoking = threading.Thread(target=revoke, daemon=True)
    revoking.start()
    kill_when(crash_host, lambda: calls(batch, "delete_node_user") > 0, "alice's deletion to be under way")
    revoking.join(60)
    crash_host.start()

    def alice_revoked() -> bool:
        states = {r["state"] for r in records(crash_host, pool_id) if r["user"] == "alice"}
        return count(batch, pool_id, "alice") == 0 and states == {"revoked"}

    wait_until(alice_revoked, 120, "alice revoked on every node", interval=0.25)

    # 3. cleanup: killed while the expired bob is being deleted from the nodes
    batch.reset_counters()
    kill_when(crash_host, lambda: calls(batch, "delete_node_user") > 0, "cleanup to delete bob")
    crash_host.start()

    def bob_expired() -> bool:
        states = {r["state"] for r in records(crash_host, pool_id) if r["user"] == "bob"}
        return count(batch, pool_id, "bob") == 0 and states == {"expired"}

    wait_until(bob_expired, 120, "bob removed by cleanup on every node", interval=0.25)
    found = assert_one_record_per_pair_and_none_missing(batch, crash_host, pool_id)
    assert len(found) == 2 * NODES
    assert all(users == set() for users in users_on_nodes(batch, pool_id).values())
