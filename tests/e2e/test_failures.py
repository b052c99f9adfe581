"""Failures a user would see: a start task failing on one node (partial, that node named) and a quota
resize error (failed fast with the service's code)."""

from __future__ import annotations

from .conftest import request_for, ssh, unique_pool


def test_a_start_task_failing_on_one_node_gives_a_partial_result_naming_it(
    stack, keys, emulator_faults_cleared
):
    pool_id = unique_pool("partial")
    emulator_faults_cleared.fail_start_tasks(pool_id=pool_id, node_indexes=[1], exit_code=3)
    users = [{"name": "alice", "sshPublicKey": keys["alice"].public, "expiry": "PT1H"}]
    status, _, body = stack.host.request("POST", "/api/pools", json=request_for(pool_id, users))
    assert status == 202, body

    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "partial", state
    failed_node = next(n["id"] for n in stack.batch.pool_nodes(pool_id)["nodes"] if n["index"] == 1)
    unusable = [n for n in state["outcome"]["nodes"] if n["outcome"] == "unusable"]
    assert unusable == [
        {
            "nodeId": failed_node,
            "outcome": "unusable",
            "state": "starttaskfailed",
            "reason": unusable[0]["reason"],
        }
    ]
    assert "exit code 3" in unusable[0]["reason"]
    assert len(state["records"]) == 2 and failed_node not in {r["nodeId"] for r in state["records"]}
    for record in state["records"]:
        assert ssh(keys["alice"], "alice", record["ip"], record["port"]).returncode == 0
    event = stack.wait_for_event(lambda e: e["poolId"] == pool_id and e["type"] == "pool-ready", "pool-ready")
    assert event["outcome"] == "partial"


def test_a_quota_resize_error_fails_fast_with_its_code(stack, keys, emulator_faults_cleared):
    pool_id = unique_pool("quota")
    emulator_faults_cleared.inject_resize_error("AccountCoreQuotaReached", pool_id=pool_id)
    users = [{"name": "alice", "sshPublicKey": keys["alice"].public}]
    status, _, body = stack.host.request("POST", "/api/pools", json=request_for(pool_id, users))
    assert status == 202, body

    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "failed"
    error = state["outcome"]["error"]
    assert error["code"] == "AccountCoreQuotaReached"  # not a deadline: it did not wait for nodes
    assert state["records"] == []
    event = stack.wait_for_event(lambda e: e["poolId"] == pool_id, "pool-failed")
    assert event["type"] == "pool-failed" and event["error"]["code"] == "AccountCoreQuotaReached"
