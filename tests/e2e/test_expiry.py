"""Expiry: the cleanup timer deletes users whose access ran out from their nodes and marks records expired."""

from __future__ import annotations

from devstack.process import wait_until

from .conftest import request_for, ssh, unique_pool


def test_the_timer_takes_expired_access_away(stack, keys):
    pool_id = unique_pool("expiry")
    users = [
        {"name": "alice", "sshPublicKey": keys["alice"].public, "expiry": "PT15S"},
        {"name": "bob", "sshPublicKey": keys["bob"].public, "expiry": "PT1H"},
    ]
    stack.send(request_for(pool_id, users, nodes=2))
    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "completed", state

    def alice_expired() -> bool:
        _, body = stack.connections(pool_id)
        return {c["state"] for c in body["connections"] if c["user"] == "alice"} == {"expired"}

    wait_until(alice_expired, 120, "the cleanup timer to expire alice's records", interval=0.5)
    _, body = stack.connections(pool_id)
    for record in body["connections"]:
        if record["user"] == "alice":
            assert record["stateChangedAt"] >= record["expiresAt"]
            assert ssh(keys["alice"], "alice", record["ip"], record["port"]).returncode != 0
        else:
            assert record["state"] == "active"
            assert ssh(keys["bob"], "bob", record["ip"], record["port"]).returncode == 0
    for node in stack.batch.pool_nodes(pool_id)["nodes"]:
        assert node["users"] == ["bob"]  # the app deleted alice from every node
    event = stack.wait_for_event(
        lambda e: e["type"] == "access-expired" and e["poolId"] == pool_id, "expired"
    )
    assert event["users"] == ["alice"]
