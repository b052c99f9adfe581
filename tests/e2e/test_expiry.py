"""Expiry: the cleanup timer deletes users whose access ran out from their nodes and marks records expired.
The emulator runs with the service's day-precise Linux expiry, so a node alone would keep the user until the
end of the expiry's day: only the app's cleanup ends access on time."""

from __future__ import annotations

from datetime import datetime

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

    # What the nodes themselves would do: keep alice past her expiry, until her expiry's UTC day is over.
    assert stack.batch.health()["userExpiry"] == "day"
    _, body = stack.connections(pool_id)
    alice_expires = {c["expiresAt"] for c in body["connections"] if c["user"] == "alice"}
    for node in stack.batch.pool_nodes(pool_id)["nodes"]:
        (alice,) = [u for u in node["userAccounts"] if u["name"] == "alice"]
        assert all(_instant(alice["loginUntil"]) > _instant(expires) for expires in alice_expires)

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
        assert node["users"] == ["bob"]  # the app's cleanup deleted alice from every node
    event = stack.wait_for_event(
        lambda e: e["type"] == "access-expired" and e["poolId"] == pool_id, "expired"
    )
    assert event["users"] == ["alice"]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
