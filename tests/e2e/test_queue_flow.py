"""A queue message -> a record for every (node, user) -> ssh works with the recorded address and key ->
DELETE revokes one user (login refused, records revoked, `access-revoked` event) while the other keeps
access."""

from __future__ import annotations

from .conftest import request_for, ssh, unique_pool


def test_queue_request_to_ssh_and_revoke(stack, keys):
    pool_id = unique_pool("queue")
    users = [
        {"name": "alice", "sshPublicKey": keys["alice"].public, "admin": True, "expiry": "PT1H"},
        {"name": "bob", "sshPublicKey": keys["bob"].public, "expiry": "PT1H"},
    ]
    stack.send(request_for(pool_id, users))

    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "completed", state
    assert state["progress"]["nodesIdle"] == state["progress"]["nodesTotal"] == 3
    assert state["progress"]["usersGranted"] == 6
    node_ids = {n["id"] for n in stack.batch.pool_nodes(pool_id)["nodes"]}
    records = state["records"]
    assert {(r["nodeId"], r["user"]) for r in records} == {(n, u) for n in node_ids for u in ("alice", "bob")}

    for record in records:
        result = ssh(keys[record["user"]], record["user"], record["ip"], record["port"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == record["nodeId"]
    some = records[0]
    assert ssh(keys["bob"], "alice", some["ip"], some["port"]).returncode != 0  # someone else's key

    event = stack.wait_for_event(lambda e: e["type"] == "pool-ready" and e["poolId"] == pool_id, "pool-ready")
    assert event["outcome"] == "completed" and event["counts"]["usersGranted"] == 6
    assert event["statusUrl"] == f"{stack.host.url}/api/pools/{pool_id}"

    status, _, body = stack.host.request("DELETE", f"/api/pools/{pool_id}/users/alice")
    assert status == 200, body
    assert body["revoked"]["deleted"] == 3 and body["revoked"]["recordsRevoked"] == 3
    assert body["revoked"]["failed"] == []
    revoked = stack.wait_for_event(
        lambda e: e["type"] == "access-revoked" and e["poolId"] == pool_id, "access-revoked"
    )
    assert revoked["user"] == "alice" and revoked["recordsRevoked"] == 3

    for record in records:
        result = ssh(keys[record["user"]], record["user"], record["ip"], record["port"])
        assert (result.returncode == 0) is (record["user"] == "bob"), (record, result.stderr)
    _, after = stack.connections(pool_id)
    states = {(c["nodeId"], c["user"]): c["state"] for c in after["connections"]}
    assert {s for (_, user), s in states.items() if user == "alice"} == {"revoked"}
    assert {s for (_, user), s in states.items() if user == "bob"} == {"active"}
    _, table = stack.connections(pool_id, "table")
    assert "user bob" in table and "user alice" not in table

    # Again: the app has no live record of alice left, so there is nothing to delete and no node is touched.
    stack.batch.reset_counters()
    status, _, again = stack.host.request("DELETE", f"/api/pools/{pool_id}/users/alice")
    assert status == 200 and again["revoked"]["recordsRevoked"] == 0 and again["revoked"]["nodes"] == 0
    assert "delete_node_user" not in stack.batch.counters()["calls"]
