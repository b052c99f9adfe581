"""Access as the nodes become ready: nodes that are idle early have their users and records while the others
are still running their start tasks, and every (node, user) ends with one active record."""

from __future__ import annotations

from datetime import datetime, timedelta

from .conftest import request_for, ssh, unique_pool


def test_nodes_idle_early_are_granted_before_the_last_node_is_idle(stack, keys):
    pool_id = unique_pool("early")
    # The emulator runs four start tasks at a time: the first nodes are idle seconds before the last ones.
    request = request_for(
        pool_id,
        [{"name": "alice", "sshPublicKey": keys["alice"].public}],
        nodes=8,
        startTask={"commandLine": "/bin/sh -c 'sleep 3'", "waitForSuccess": True},
    )
    status, _, body = stack.host.request("POST", "/api/pools", json=request)
    assert status == 202, body
    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "completed" and state["progress"]["usersGranted"] == 8

    nodes = list(stack.batch.client().list_nodes(pool_id, select=["id", "state", "stateTransitionTime"]))
    last_idle = max(n.state_transition_time for n in nodes)
    records = stack.records(pool_id)
    assert {node for node, _ in records} == {n.id for n in nodes}
    assert {r["state"] for r in records.values()} == {"active"}
    granted = sorted(datetime.fromisoformat(r["grantedAt"].replace("Z", "+00:00")) for r in records.values())
    # grantedAt has whole seconds: the first nodes got their users a second or more before the last was idle
    assert granted[0] + timedelta(seconds=1) <= last_idle

    first = next(r for r in records.values() if datetime.fromisoformat(r["grantedAt"].replace("Z", "+00:00"))
                 == granted[0])  # fmt: skip
    result = ssh(keys["alice"], "alice", first["ip"], first["port"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == first["nodeId"]
