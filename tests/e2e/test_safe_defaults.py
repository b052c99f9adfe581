"""Safe defaults: no SSH source prefixes and no DEFAULT_SSH_SOURCE_PREFIXES -> rejected naming the field; an
explicit "*" is accepted with a warning in the 202 and the status; a quota error after some nodes were
allocated -> the run goes on with them and ends `partial`, naming the error."""

from __future__ import annotations

from .conftest import request_for, ssh, unique_pool


def test_no_source_prefixes_and_no_default_is_rejected_naming_the_field(stack, keys):
    request = request_for(unique_pool("open"), [{"name": "alice", "sshPublicKey": keys["alice"].public}])
    request["ssh"] = {"frontendPortRange": {"start": 40000, "end": 40099}}
    stack.batch.reset_counters()
    status, _, body = stack.host.request("POST", "/api/pools", json=request)
    assert status == 400
    (error,) = body["errors"]
    assert error["field"] == "ssh.allowedSourcePrefixes" and "DEFAULT_SSH_SOURCE_PREFIXES" in error["rule"]
    assert sum(stack.batch.counters()["calls"].values()) == 0


def test_an_explicit_star_is_accepted_with_a_warning(stack, keys):
    pool_id = unique_pool("star")
    request = request_for(pool_id, [{"name": "alice", "sshPublicKey": keys["alice"].public}], nodes=1)
    request["ssh"]["allowedSourcePrefixes"] = ["*"]
    status, _, body = stack.host.request("POST", "/api/pools", json=request)
    assert status == 202, body
    assert [w["field"] for w in body["warnings"]] == ["ssh.allowedSourcePrefixes"]
    assert "every address" in body["warnings"][0]["rule"]
    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "completed"
    assert [w["field"] for w in state["warnings"]] == ["ssh.allowedSourcePrefixes"]


def test_a_quota_error_after_some_nodes_ends_partial_with_users_on_those_nodes(
    stack, keys, emulator_faults_cleared
):
    pool_id = unique_pool("quota-some")
    emulator_faults_cleared.inject_resize_error("AccountCoreQuotaReached", pool_id=pool_id, allocate=2)
    users = [{"name": "alice", "sshPublicKey": keys["alice"].public}]
    status, _, body = stack.host.request("POST", "/api/pools", json=request_for(pool_id, users, nodes=3))
    assert status == 202, body
    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "partial", state
    assert state["outcome"]["error"]["code"] == "AccountCoreQuotaReached"
    assert state["progress"]["nodesTotal"] == 3 and state["progress"]["usersGranted"] == 2
    nodes = {n["id"] for n in stack.batch.pool_nodes(pool_id)["nodes"]}
    assert len(nodes) == 2 and {r["nodeId"] for r in state["records"]} == nodes
    for record in state["records"]:
        assert ssh(keys["alice"], "alice", record["ip"], record["port"]).returncode == 0
    event = stack.wait_for_event(lambda e: e["poolId"] == pool_id and e["type"] == "pool-ready", "pool-ready")
    assert event["outcome"] == "partial" and event["error"]["code"] == "AccountCoreQuotaReached"
    assert event["connectionsTotal"] == 2
