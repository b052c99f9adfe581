"""Batch activities against the emulator with the real azure-batch SDK: each run twice has the same effect."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime

import pytest

from activities.batch_pools import (
    create_pool,
    delete_pool,
    inspect_pool,
    poll_pool,
    select_pool_image,
    survey_pool,
)
from activities.connection_records import connection_sample
from activities.managed_pools import clear_grant_work, read_grant_work
from activities.node_users import delete_node_users, grant_node_users
from devstack.process import wait_until
from devstack.ssh_client import run_with_password
from provisioning.clients import close_async_clients
from provisioning.durations import format_timestamp
from provisioning.grant_work import chunk_key
from provisioning.nodes import wait_decision
from provisioning.passwords import PasswordCipher
from provisioning.pool_registry import ManagedPools
from provisioning.request import validate_request
from provisioning.storage import ConnectionRecords

from .conftest import ssh_run, unique_pool, wait_for_settled


def make_request(settings, key, pool_id, *, nodes=2, start_task="echo started", password=None, **extra):
    user = {"name": "alice", "sshPublicKey": key.public, "admin": True, "expiry": "PT2H"}
    if password:
        user["password"] = password
    body = {
        "poolId": pool_id,
        "vmSize": "Standard_D2s_v3",
        "nodes": {"dedicated": nodes},
        "image": {"os": "ubuntu", "version": "24.04"},
        "startTask": {"commandLine": start_task, "waitForSuccess": True},
        "ssh": {
            "frontendPortRange": {"start": 41000, "end": 41099},
            "allowedSourcePrefixes": ["127.0.0.0/8"],
        },
        "users": [user],
        **extra,
    }
    result = validate_request(body, settings, datetime.now(UTC))
    assert result.ok, result.errors
    return result.request.orchestration_input(PasswordCipher(settings.password_encryption_key))


@pytest.fixture
def image(app_env):
    return select_pool_image({"image": {"os": "ubuntu", "version": "24.04"}})["image"]


def ready_pool(app_env, ssh_key, image, **kwargs):
    request = make_request(app_env, ssh_key, unique_pool(), **kwargs)
    assert create_pool({"request": request, "image": image})["ok"]
    snapshot = wait_for_settled(poll_pool, request["poolId"])
    return request, snapshot


def usable(pool_id: str) -> dict[str, dict]:
    """The pool's ready nodes with their SSH endpoints, by node id (survey_pool: one listing)."""
    nodes = survey_pool({"poolId": pool_id})["nodes"]
    return {node_id: info for node_id, info in sorted(nodes.items()) if info["category"] == "ready"}


def test_select_image_twice_gives_the_same_verified_image(app_env):
    first = select_pool_image({"image": {"os": "ubuntu"}})
    assert first == select_pool_image({"image": {"os": "ubuntu"}})
    assert first["ok"] and first["image"]["nodeAgentSkuId"] == "batch.node.ubuntu 24.04"


def test_select_image_refuses_what_the_service_does_not_list(app_env):
    result = select_pool_image({"image": {"os": "ubuntu", "version": "26.04"}})
    assert result["ok"] is False and result["error"]["code"] == "ImageNotAvailable"
    assert "ubuntu 24.04" in result["error"]["message"]


def test_create_pool_twice_is_one_pool(app_env, ssh_key, image, batch_emulator):
    request = make_request(app_env, ssh_key, unique_pool())
    assert create_pool({"request": request, "image": image}) == {"ok": True, "created": True}
    assert create_pool({"request": request, "image": image}) == {"ok": True, "created": False}
    pools = [p.id for p in batch_emulator.client().list_pools() if p.id == request["poolId"]]
    assert pools == [request["poolId"]]
    pool = batch_emulator.client().get_pool(request["poolId"])
    (nat,) = pool.network_configuration.endpoint_configuration.inbound_nat_pools
    assert (nat.backend_port, nat.frontend_port_range_start) == (22, 41000)
    assert pool.start_task.command_line == "echo started"


def test_create_pool_with_another_spec_fails_clearly(app_env, ssh_key, image):
    request = make_request(app_env, ssh_key, unique_pool())
    assert create_pool({"request": request, "image": image})["ok"]
    other = copy.deepcopy(request)
    other["vmSize"] = "Standard_D4s_v3"
    result = create_pool({"request": other, "image": image})
    assert result["ok"] is False
    assert result["error"]["code"] == "PoolExistsWithDifferentSpec"
    assert "vmsize is standard_d2s_v3, not standard_d4s_v3" in result["error"]["message"].lower()


def test_create_pool_reports_the_service_error_for_an_unknown_size(app_env, ssh_key, image):
    request = make_request(app_env, ssh_key, unique_pool(), vmSize="Standard_Bogus_v9")
    result = create_pool({"request": request, "image": image})
    assert result["ok"] is False
    assert result["error"]["code"] == "InvalidPropertyValue"
    assert "PropertyName: vmSize" in result["error"]["message"]
    assert "RequestId" not in result["error"]["message"]


def test_poll_pool_settles_with_every_node_usable_and_twice_agrees(app_env, ssh_key, image):
    request, snapshot = ready_pool(app_env, ssh_key, image, nodes=3)
    assert snapshot["counts"]["ready"] == 3 and snapshot["settled"]
    assert snapshot["usable"] == 3 and snapshot["problems"] == []
    assert poll_pool({"poolId": request["poolId"]}) == snapshot


def test_a_poll_never_sees_a_steady_pool_without_its_nodes(app_env, ssh_key, image, emulator_faults_cleared):
    request = make_request(app_env, ssh_key, unique_pool(), nodes=2)
    # a slow pool read: a listing taken meanwhile would be older than the pool's (steady) state
    emulator_faults_cleared.inject_fault("get_pool", latency_ms=1500, count=1)
    assert create_pool({"request": request, "image": image})["ok"]
    snapshot = poll_pool({"poolId": request["poolId"]})
    if snapshot["allocationState"] == "steady":
        assert snapshot["nodeCount"] == 2, snapshot
    assert wait_decision(snapshot, deadline_passed=False)["action"] != "fail", snapshot


def test_a_failing_start_task_is_reported_for_that_node(app_env, ssh_key, image, emulator_faults_cleared):
    pool_id = unique_pool()
    emulator_faults_cleared.fail_start_tasks(pool_id=pool_id, node_indexes=[1], exit_code=7)
    request = make_request(app_env, ssh_key, pool_id, nodes=3)
    assert create_pool({"request": request, "image": image})["ok"]
    snapshot = wait_for_settled(poll_pool, pool_id)
    decision = wait_decision(snapshot, deadline_passed=False)
    assert decision["action"] == "proceed" and decision["usable"] == 2
    (problem,) = snapshot["problems"]
    assert problem["state"] == "starttaskfailed" and "exit code 7" in problem["reason"]
    assert problem["nodeId"] not in usable(pool_id)


def test_a_quota_error_after_some_nodes_goes_on_with_them(app_env, ssh_key, image, emulator_faults_cleared):
    pool_id = unique_pool()
    emulator_faults_cleared.inject_resize_error("AccountCoreQuotaReached", pool_id=pool_id, allocate=1)
    request = make_request(app_env, ssh_key, pool_id, nodes=3)
    assert create_pool({"request": request, "image": image})["ok"]
    decision = wait_decision(wait_for_settled(poll_pool, pool_id), deadline_passed=False)
    assert decision["action"] == "proceed" and decision["usable"] == 1
    assert decision["allocationError"]["code"] == "AccountCoreQuotaReached"


def test_inspect_pool_refuses_a_missing_pool_and_one_without_ssh(app_env, ssh_key, image, batch_emulator):
    from azure.batch import models

    assert inspect_pool({"poolId": unique_pool()})["status"] == 404
    request, _ = ready_pool(app_env, ssh_key, image, nodes=1)
    assert inspect_pool({"poolId": request["poolId"]}) == {"ok": True, "poolId": request["poolId"]}
    bare = unique_pool("bare")
    batch_emulator.client().create_pool(
        models.BatchPoolCreateOptions(
            id=bare, vm_size="Standard_D2s_v3", target_dedicated_nodes=0,
            virtual_machine_configuration=models.VirtualMachineConfiguration(
                image_reference=models.BatchVmImageReference(**image["imageReference"]),
                node_agent_sku_id=image["nodeAgentSkuId"],
            ),
        )
    )  # fmt: skip
    refused = inspect_pool({"poolId": bare})
    assert refused["status"] == 409 and refused["error"]["code"] == "PoolHasNoSshEndpoint"
    assert "cannot be changed" in refused["error"]["message"]


def test_a_quota_resize_error_fails_fast_with_the_code(app_env, ssh_key, image, emulator_faults_cleared):
    pool_id = unique_pool()
    emulator_faults_cleared.inject_resize_error("AccountCoreQuotaReached", pool_id=pool_id)
    request = make_request(app_env, ssh_key, pool_id)
    assert create_pool({"request": request, "image": image})["ok"]
    snapshot = wait_for_settled(poll_pool, pool_id)
    decision = wait_decision(snapshot, deadline_passed=False)
    assert decision["action"] == "fail" and decision["code"] == "AccountCoreQuotaReached"


def grant(request, node_ids, *, listing=None, **extra) -> dict:
    """Run the chunk activity as the host does (on an event loop) for these nodes and every user."""
    names = [u["name"] for u in request["users"]]
    nodes = [{"nodeId": n, "users": names, **((listing or {}).get(n) or {})} for n in node_ids]
    payload = {"poolId": request["poolId"], "requestId": request["requestId"], "users": request["users"],
               "grantedAt": format_timestamp(datetime.now(UTC)), "nodes": nodes, **extra}  # fmt: skip
    return run_on_a_loop(payload)


def run_on_a_loop(payload: dict) -> dict:
    async def run() -> dict:
        try:
            return await grant_node_users(payload)
        finally:
            await close_async_clients()

    return asyncio.run(run())


def records_of(settings, pool_id) -> dict:
    return {r.row_key: r for r in ConnectionRecords(settings).for_pool(pool_id)}


def test_grant_twice_then_ssh_works_with_one_active_record(app_env, ssh_key, image, batch_emulator):
    request, snapshot = ready_pool(app_env, ssh_key, image)
    node_id = next(iter(usable(request["poolId"])))
    first = grant(request, [node_id])
    assert (first["granted"], first["actions"], first["failed"]) == (1, {"created": 1}, [])
    again = grant(request, [node_id])  # run twice: the app's own record says the user is the app's
    assert (again["granted"], again["actions"]) == (1, {"replaced": 1})
    retried = grant(request, [node_id], attempt=2)  # a transient error struck after Batch created the user
    assert retried["actions"] == {"replaced": 1}
    (record,) = records_of(app_env, request["poolId"]).values()
    login = batch_emulator.client().get_node_remote_login_settings(request["poolId"], node_id)
    assert (record.state, record.ip, record.port) == ("active", login.remote_login_ip_address,
                                                      login.remote_login_port)  # fmt: skip
    connection = {"nodeId": node_id, "user": "alice", "ip": record.ip, "port": record.port}
    sample = connection_sample({"poolId": request["poolId"], "requestId": request["requestId"]})
    assert sample == {"connections": [connection]}  # what the event tells, read from the records
    result = ssh_run(ssh_key, "alice", record.ip, record.port)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == node_id


def test_grant_takes_endpoints_from_the_listing_and_asks_batch_only_for_the_users(
    app_env, ssh_key, image, emulator_faults_cleared
):
    request, snapshot = ready_pool(app_env, ssh_key, image, nodes=3)
    listed = {
        n: {"ip": e["ip"], "port": e["port"], "state": e["state"]}
        for n, e in usable(request["poolId"]).items()
    }
    emulator_faults_cleared.reset_counters()
    result = grant(request, sorted(listed), listing=listed)
    assert result["granted"] == 3 and result["written"] == 3
    calls = emulator_faults_cleared.counters()["calls"]
    assert calls == {"create_node_user": 3}  # no listing, no remote-login call: one Batch call per user
    records = records_of(app_env, request["poolId"])
    assert {(r.node_id, r.ip, r.port) for r in records.values()} == {
        (n, e["ip"], e["port"]) for n, e in listed.items()
    }


def test_a_poll_stages_the_ready_nodes_once_and_a_chunk_grants_them_from_the_stage(
    app_env, ssh_key, image, emulator_faults_cleared
):
    request, _ = ready_pool(app_env, ssh_key, image, nodes=3)
    pool_id, run = request["poolId"], f"run-{request['poolId']}"
    nodes = usable(pool_id)
    first = poll_pool({"poolId": pool_id, "stage": {"run": run, "batch": 0}})
    assert first["staged"] == {"work": f"{run}|0", "chunks": 1, "nodes": 3}
    assert not any(node_id in json.dumps(first) for node_id in nodes)  # counts and a reference, no node list
    assert poll_pool({"poolId": pool_id, "stage": {"run": run, "batch": 0}}) == first  # run again: same rows
    assert "staged" not in poll_pool({"poolId": pool_id, "stage": {"run": run, "batch": 1}})  # nothing new
    work = chunk_key(first["staged"]["work"], 0)
    assert read_grant_work({"poolId": pool_id, "work": work}) == {"nodeIds": sorted(nodes)}

    emulator_faults_cleared.reset_counters()
    result = run_on_a_loop({"poolId": pool_id, "requestId": request["requestId"], "users": request["users"],
                            "grantedAt": format_timestamp(datetime.now(UTC)), "work": work})  # fmt: skip
    assert (result["nodes"], result["granted"], result["written"]) == (3, 3, 3)
    assert emulator_faults_cleared.counters()["calls"] == {"create_node_user": 3}  # endpoints from the stage
    assert {(r.node_id, r.ip, r.port, r.state) for r in records_of(app_env, pool_id).values()} == {
        (n, e["ip"], e["port"], "active") for n, e in nodes.items()
    }
    assert clear_grant_work({"poolId": pool_id, "run": run}) == {"cleared": 1}
    assert clear_grant_work({"poolId": pool_id, "run": run}) == {"cleared": 0}


def test_a_password_reaches_batch_decrypted(app_env, ssh_key, image, batch_emulator):
    request, snapshot = ready_pool(app_env, ssh_key, image, nodes=1, password="a long enough secret")
    assert "a long enough secret" not in str(request)
    node_id = next(iter(usable(request["poolId"])))
    result = grant(request, [node_id])
    assert result["granted"] == 1
    nodes = batch_emulator.pool_nodes(request["poolId"])
    assert "a long enough secret" not in str(nodes) and "a long enough secret" not in str(result)
    endpoint = usable(request["poolId"])[node_id]
    assert (
        run_with_password(endpoint["ip"], endpoint["port"], "alice", "a long enough secret").strip()
        == node_id
    )


def test_a_user_the_app_did_not_create_is_never_replaced(app_env, ssh_key, image, batch_emulator, tmp_path):
    from azure.batch import models

    from devstack.ssh_client import generate_key

    request, snapshot = ready_pool(app_env, ssh_key, image, nodes=1)
    node_id = next(iter(usable(request["poolId"])))
    theirs = generate_key(tmp_path, "theirs")
    batch_emulator.client().create_node_user(
        request["poolId"], node_id,
        models.BatchNodeUserCreateOptions(name="alice", is_admin=False, ssh_public_key=theirs.public),
    )  # fmt: skip
    result = grant(request, [node_id])
    assert result["granted"] == 0
    assert [(f["nodeId"], f["user"], f["error"]["code"]) for f in result["failed"]] == [
        (node_id, "alice", "UserNotCreatedByApp")
    ]
    assert records_of(app_env, request["poolId"]) == {}  # its pending record is dropped: not the app's
    endpoint = usable(request["poolId"])[node_id]
    assert ssh_run(theirs, "alice", endpoint["ip"], endpoint["port"]).returncode == 0  # still theirs
    assert ssh_run(ssh_key, "alice", endpoint["ip"], endpoint["port"]).returncode != 0
    assert grant(request, [node_id])["failed"][0]["error"]["code"] == "UserNotCreatedByApp"  # and stays so


def test_throttling_is_reported_as_transient_with_a_retry_not_as_a_failure(
    app_env, ssh_key, image, emulator_faults_cleared
):
    request, snapshot = ready_pool(app_env, ssh_key, image, nodes=2)
    first, second = usable(request["poolId"])
    emulator_faults_cleared.inject_fault("create_node_user", status=429, retry_after=0)
    result = grant(request, [first, second])
    assert result["granted"] == 0 and result["failed"] == []
    assert {t["nodeId"] for t in result["transient"]} == {first, second}
    assert result["retry"]["attempt"] == 2
    assert [n["users"] for n in result["retry"]["nodes"]] == [["alice"]] * 2
    states = {r.state for r in records_of(app_env, request["poolId"]).values()}
    assert states == {"pending"}  # the app knows it may have created them
    emulator_faults_cleared.clear_faults()
    assert run_on_a_loop(result["retry"])["granted"] == 2
    assert {r.state for r in records_of(app_env, request["poolId"]).values()} == {"active"}


def test_grant_captures_errors_per_node_and_user(app_env, ssh_key, image):
    request, snapshot = ready_pool(app_env, ssh_key, image, nodes=1)
    good = next(iter(usable(request["poolId"])))
    listed = {"no-such-node": {"ip": "127.0.0.9", "port": 40999, "state": "idle"}}
    result = grant(request, [good, "no-such-node"], listing=listed)
    assert result["granted"] == 1
    assert [(f["nodeId"], f["error"]["code"]) for f in result["failed"]] == [("no-such-node", "NodeNotFound")]
    unlisted = grant(request, ["gone-node"])  # no endpoint in the listing and none from Batch
    assert unlisted["noEndpoint"][0]["nodeId"] == "gone-node" and unlisted["pairs"] == 0


def test_a_grant_creates_no_user_whose_grant_was_revoked_meanwhile(
    app_env, ssh_key, image, emulator_faults_cleared
):
    """A chunk of a grant that starts after the user's grant was revoked (revoke marks the grant first)
    creates that user nowhere and says why; the others' users are created as ever."""
    request, _ = ready_pool(app_env, ssh_key, image, nodes=1)
    pool_id, node_id = request["poolId"], next(iter(usable(request["poolId"])))
    alice = request["users"][0]
    bob = {**alice, "name": "bob"}
    pools, now = ManagedPools(app_env), datetime.now(UTC)
    pools.save_grants(pool_id, [alice, bob], request["requestId"], now)
    assert pools.set_grant_state(pool_id, "bob", "revoked", now)
    emulator_faults_cleared.reset_counters()
    result = grant({**request, "users": [alice, bob]}, [node_id])
    assert (result["pairs"], result["granted"], result["actions"]) == (2, 1, {"created": 1})
    message = "the grant of bob was revoked before this node's turn; bob was not created on it"
    ended = {"code": "GrantEnded", "message": message}
    assert result["failed"] == [{"nodeId": node_id, "user": "bob", "error": ended}]
    assert emulator_faults_cleared.counters()["calls"]["create_node_user"] == 1  # alice's alone
    assert set(records_of(app_env, pool_id)) == {f"{node_id}|alice"}  # no pending record of bob


def test_delete_node_users_twice_then_login_is_refused(app_env, ssh_key, image):
    request, snapshot = ready_pool(app_env, ssh_key, image, nodes=1)
    node_id = next(iter(usable(request["poolId"])))
    grant(request, [node_id])
    endpoint = usable(request["poolId"])[node_id]
    assert ssh_run(ssh_key, "alice", endpoint["ip"], endpoint["port"]).returncode == 0
    payload = {"poolId": request["poolId"], "nodeId": node_id, "users": ["alice"]}
    assert delete_node_users(payload)["users"]["alice"] == {"ok": True, "result": "deleted"}
    again = delete_node_users(payload)["users"]["alice"]
    assert again["ok"] and again["result"] == "gone" and again["code"] == "NodeUserNotFound"
    assert ssh_run(ssh_key, "alice", endpoint["ip"], endpoint["port"]).returncode != 0


def test_deleting_users_of_a_missing_pool_is_not_an_error(app_env):
    result = delete_node_users({"poolId": unique_pool(), "nodeId": "n1", "users": ["alice"]})
    assert result["users"]["alice"]["ok"] and result["users"]["alice"]["result"] == "gone"


def test_survey_twice_and_delete_pool_twice(app_env, ssh_key, image, batch_emulator):
    request, snapshot = ready_pool(app_env, ssh_key, image, nodes=2)
    survey = survey_pool({"poolId": request["poolId"]})
    assert survey == survey_pool({"poolId": request["poolId"]})
    assert len(survey["nodes"]) == snapshot["usable"] == 2
    assert {n["category"] for n in survey["nodes"].values()} == {"ready"}
    assert all(n["ip"] and n["port"] for n in survey["nodes"].values())
    assert delete_pool({"poolId": request["poolId"]})["deleted"] is True
    assert delete_pool({"poolId": request["poolId"]})["deleted"] in (True, False)  # deleting, or gone already

    def gone() -> bool:
        return survey_pool({"poolId": request["poolId"]})["exists"] is False

    wait_until(gone, 30, "the pool to disappear")
    assert delete_pool({"poolId": request["poolId"]}) == {"deleted": False, "alreadyGone": True}
    snapshot = poll_pool({"poolId": request["poolId"]})
    assert wait_decision(snapshot, deadline_passed=False)["code"] == "PoolNotFound"
