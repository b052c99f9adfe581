"""Access as the nodes become ready: nodes that are idle early have their users and records while the others
are still running their start tasks, and every (node, user) ends with one active record."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError

from devstack.process import wait_until

from .conftest import request_for, ssh, unique_pool


def test_nodes_idle_early_are_granted_while_the_others_still_run_their_start_task(stack, keys, tmp_path):
    pool_id = unique_pool("early")
    gates = tmp_path / "gates"
    gates.mkdir()
    # Each node's start task waits until the test opens its gate: the test decides which nodes are idle first.
    wait_for_gate = f"/bin/sh -c 'while [ ! -e {gates}/$AZ_BATCH_NODE_ID ]; do sleep 0.05; done'"
    request = request_for(
        pool_id,
        [{"name": "alice", "sshPublicKey": keys["alice"].public}],
        nodes=6,
        startTask={"commandLine": wait_for_gate, "waitForSuccess": True},
    )
    status, _, body = stack.host.request("POST", "/api/pools", json=request)
    assert status == 202, body
    batch = stack.batch.client()

    def node_ids() -> list[str]:
        try:
            return sorted(n.id for n in batch.list_nodes(pool_id, select=["id"]))
        except ResourceNotFoundError:  # the orchestration has not created the pool yet
            return []

    wait_until(lambda: len(node_ids()) == 6, 60, "the pool's six nodes")
    early, late = node_ids()[:3], node_ids()[3:]
    for node_id in early:
        (gates / node_id).touch()

    def early_nodes_granted() -> bool:
        active = {node for (node, _), r in stack.records(pool_id).items() if r["state"] == "active"}
        return set(early) <= active

    wait_until(early_nodes_granted, 60, "users and records on the nodes idle first", interval=0.2)
    states = {n.id: n.state for n in batch.list_nodes(pool_id, select=["id", "state"])}
    assert all(states[node_id] != "idle" for node_id in late), states  # still in their start task
    record = stack.records(pool_id)[early[0], "alice"]
    result = ssh(keys["alice"], "alice", record["ip"], record["port"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == early[0]

    for node_id in late:
        (gates / node_id).touch()
    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "completed" and state["progress"]["usersGranted"] == 6
    records = stack.records(pool_id)
    assert set(records) == {(node_id, "alice") for node_id in early + late}
    assert {r["state"] for r in records.values()} == {"active"}
