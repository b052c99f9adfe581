"""Reconcile, on a host of its own with a 2-second RECONCILE_SCHEDULE (and its own queues and tables, so the
other tests' Batch call counts stay exact): nodes that join a managed pool get its users and records, records
of a node or pool deleted outside the app become `gone`, a pool past its deleteAfter is deleted."""

from __future__ import annotations

import uuid

import pytest
from azure.batch import models

from devstack.process import wait_until

from .conftest import app_host, request_for, ssh, unique_pool


@pytest.fixture(scope="module")
def reconciler(tmp_path_factory, azurite, batch_emulator):
    suffix = uuid.uuid4().hex[:8]
    env = {
        "IDLE_POLL_INTERVAL": "PT0.5S/PT1S",
        "PROVISION_DEADLINE": "PT5M",
        "MAX_NODES_PER_REQUEST": "10",
        "CLEANUP_SCHEDULE": "0 0 0 1 1 *",
        "RECONCILE_SCHEDULE": "*/2 * * * * *",
        "REQUEST_QUEUE_NAME": f"requests-{suffix}",
        "EVENTS_QUEUE_NAME": f"events-{suffix}",
        "CONNECTIONS_TABLE_NAME": f"conn{suffix}",
        "REQUESTS_TABLE_NAME": f"req{suffix}",
        "POOLS_TABLE_NAME": f"pools{suffix}",
    }
    with app_host(tmp_path_factory, azurite, batch_emulator, env) as stack:
        yield stack


def provisioned(stack, keys, prefix: str, nodes: int, **extra) -> str:
    pool_id = unique_pool(prefix)
    users = [{"name": "alice", "sshPublicKey": keys["alice"].public}]
    status, _, body = stack.host.request(
        "POST", "/api/pools", json=request_for(pool_id, users, nodes=nodes, **extra)
    )
    assert status == 202, body
    assert stack.wait_for_phase(pool_id)["phase"] == "completed"
    return pool_id


def test_nodes_that_join_a_managed_pool_get_its_users_and_records(reconciler, keys):
    pool_id = provisioned(reconciler, keys, "grow", 1)
    reconciler.batch.client().begin_resize_pool(
        pool_id, models.BatchPoolResizeOptions(target_dedicated_nodes=3), polling_interval=0
    )
    nodes = reconciler.idle_nodes(pool_id, 3)

    def all_granted() -> bool:
        records = reconciler.records(pool_id)
        return all(records.get((n, "alice"), {}).get("state") == "active" for n in nodes)

    wait_until(all_granted, 120, "reconcile to grant alice on the new nodes", interval=0.5)
    for record in reconciler.records(pool_id).values():
        result = ssh(keys["alice"], "alice", record["ip"], record["port"])
        assert result.returncode == 0 and result.stdout.strip() == record["nodeId"]

    def announced() -> set[str]:  # nodes may turn idle in different periods: one event each
        reconciler.drain_events()
        return {
            n
            for e in reconciler.events
            if e["type"] == "nodes-reconciled" and e["poolId"] == pool_id
            for n in e.get("nodesGranted", [])
        }

    wait_until(lambda: len(announced()) == 2, 60, "nodes-reconciled events for both new nodes", interval=0.5)
    assert announced() < set(nodes)


def test_records_of_a_node_and_then_a_pool_deleted_outside_the_app_become_gone(reconciler, keys):
    pool_id = provisioned(reconciler, keys, "shrink", 2)
    client = reconciler.batch.client()
    removed, kept = sorted(reconciler.records(pool_id))
    client.begin_remove_nodes(
        pool_id, models.BatchNodeRemoveOptions(node_ids=[removed[0]]), polling_interval=0
    )

    def node_gone() -> bool:
        return reconciler.records(pool_id)[removed]["state"] == "gone"

    wait_until(node_gone, 120, "the removed node's record to become gone", interval=0.5)
    assert reconciler.records(pool_id)[kept]["state"] == "active"

    client.begin_delete_pool(pool_id, polling_interval=0)

    def pool_gone() -> bool:
        return {r["state"] for r in reconciler.records(pool_id).values()} == {"gone"}

    wait_until(pool_gone, 120, "every record of the deleted pool to become gone", interval=0.5)

    def unlisted() -> bool:  # the same reconcile run marks the pool gone right after its records
        _, _, listing = reconciler.host.request("GET", "/api/pools")
        return pool_id not in {p["poolId"] for p in listing["pools"]}

    wait_until(unlisted, 60, "the deleted pool to leave the pool listing", interval=0.5)


def test_a_pool_past_its_delete_after_is_deleted_by_the_timer(reconciler, keys):
    pool_id = provisioned(reconciler, keys, "ttl", 1, deleteAfter="PT10S")
    _, view = reconciler.pool(pool_id)
    assert view["pool"]["deleteAfter"] and view["pool"]["createdByApp"]

    def deleted() -> bool:
        return pool_id not in {p.id for p in reconciler.batch.client().list_pools()}

    wait_until(deleted, 120, "the timer to delete the pool after its deleteAfter", interval=0.5)
    event = reconciler.wait_for_event(
        lambda e: e["type"] == "pool-deleted" and e["poolId"] == pool_id, "pool-deleted"
    )
    assert event["reason"] == "deleteAfter"
    assert {r["state"] for r in reconciler.records(pool_id).values()} == {"deleted"}
