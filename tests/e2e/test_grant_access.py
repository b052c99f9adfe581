"""Access on existing pools: a pool created directly through the Batch SDK, key rotation and expiry extension
through the same call, a user added to a pool the app provisioned, and the 404 / 409 refusals; listing and
per-user views. Logins with the system ssh client."""

from __future__ import annotations

from devstack.batch_emulator.sdk_pools import newest_verified_ubuntu
from devstack.ssh_client import generate_key

from .conftest import request_for, ssh, unique_pool


def test_grant_on_a_pool_the_app_did_not_create_then_list_and_look_up(stack, keys):
    pool_id = unique_pool("theirs")
    nodes = stack.sdk_pool(pool_id, 2)
    status, answer = stack.grant(pool_id, [{"name": "alice", "sshPublicKey": keys["alice"].public}])
    assert status == 202, answer
    output = stack.finished(answer)
    assert output["outcome"] == "completed" and output["progress"]["usersGranted"] == 2

    records = stack.records(pool_id)
    assert set(records) == {(n, "alice") for n in nodes}
    for record in records.values():
        assert record["state"] == "active" and record["stateChangedAt"]
        result = ssh(keys["alice"], "alice", record["ip"], record["port"])
        assert result.returncode == 0 and result.stdout.strip() == record["nodeId"]
    event = stack.wait_for_event(
        lambda e: e["type"] == "access-granted" and e["poolId"] == pool_id, "access-granted"
    )
    assert {(c["nodeId"], c["port"]) for c in event["connections"]} == {
        (r["nodeId"], r["port"]) for r in records.values()
    }
    assert "ssh-rsa" not in str(event)

    status, _, listing = stack.host.request("GET", "/api/pools")
    (mine,) = [p for p in listing["pools"] if p["poolId"] == pool_id]
    assert mine["createdByApp"] is False and mine["activeUsers"] == ["alice"] and mine["phase"] == "completed"
    status, view = stack.pool(pool_id)
    assert view["pool"]["managed"] and [u["name"] for u in view["pool"]["users"]] == ["alice"]
    assert {n["nodeId"] for n in view["pool"]["nodes"]} == set(nodes)
    status, _, access = stack.host.request("GET", "/api/users/alice/access")
    assert status == 200 and pool_id in access["pools"]
    assert {r["nodeId"] for r in access["access"] if r["poolId"] == pool_id} == set(nodes)

    status, _, refused = stack.host.request("DELETE", f"/api/pools/{pool_id}")
    assert status == 409 and "revoke its users" in refused["error"]
    assert [p.id for p in stack.batch.client().list_pools() if p.id == pool_id] == [pool_id]


def test_the_same_call_rotates_a_key_and_extends_an_expiry(stack, keys, tmp_path):
    pool_id = unique_pool("rotate")
    nodes = stack.sdk_pool(pool_id, 2)
    first = [{"name": "alice", "sshPublicKey": keys["alice"].public, "expiry": "PT1H"}]
    stack.finished(stack.grant(pool_id, first)[1])
    before = stack.records(pool_id)

    new_key = generate_key(tmp_path, "alice-new")
    rotated = [{"name": "alice", "sshPublicKey": new_key.public, "expiry": "PT3H"}]
    status, answer = stack.grant(pool_id, rotated)
    assert status == 202, answer
    assert stack.finished(answer)["outcome"] == "completed"
    after = stack.records(pool_id)
    assert set(after) == {(n, "alice") for n in nodes}
    for key, record in after.items():
        assert record["expiresAt"] > before[key]["expiresAt"]  # extended
        assert record["keyFingerprint"] != before[key]["keyFingerprint"]
        assert ssh(new_key, "alice", record["ip"], record["port"]).returncode == 0
        assert ssh(keys["alice"], "alice", record["ip"], record["port"]).returncode != 0  # old key refused


def test_a_user_is_added_to_a_pool_the_app_provisioned(stack, keys):
    pool_id = unique_pool("add")
    stack.send(request_for(pool_id, [{"name": "alice", "sshPublicKey": keys["alice"].public}], nodes=2))
    assert stack.wait_for_phase(pool_id)["phase"] == "completed"
    status, answer = stack.grant(pool_id, [{"name": "bob", "sshPublicKey": keys["bob"].public}])
    assert status == 202, answer
    assert stack.finished(answer)["outcome"] == "completed"
    records = stack.records(pool_id)
    assert {user for _, user in records} == {"alice", "bob"} and len(records) == 4
    for (_, user), record in records.items():
        assert ssh(keys[user], user, record["ip"], record["port"]).returncode == 0
    status, view = stack.pool(pool_id)
    assert view["pool"]["createdByApp"] is True
    assert sorted(u["name"] for u in view["pool"]["users"]) == ["alice", "bob"]


def test_a_grant_on_a_missing_pool_is_404_and_on_a_pool_without_ssh_409(stack, keys):
    from azure.batch import models

    users = [{"name": "alice", "sshPublicKey": keys["alice"].public}]
    stack.batch.reset_counters()
    status, answer = stack.grant(unique_pool("nowhere"), users)
    assert status == 404 and answer["code"] == "PoolNotFound", answer
    calls = stack.batch.counters()["calls"]
    assert set(calls) == {"get_pool"}, calls  # looked, changed nothing

    bare = unique_pool("nossh")
    client = stack.batch.client()
    image = newest_verified_ubuntu(client)
    client.create_pool(
        models.BatchPoolCreateOptions(
            id=bare, vm_size="standard_d2s_v3", target_dedicated_nodes=1,
            virtual_machine_configuration=models.VirtualMachineConfiguration(
                image_reference=image.image_reference, node_agent_sku_id=image.node_agent_sku_id
            ),
        )
    )  # fmt: skip
    status, answer = stack.grant(bare, users)
    assert status == 409 and answer["code"] == "PoolHasNoSshEndpoint"
    assert "cannot be changed" in answer["error"] and "POST /api/pools" in answer["error"]
    status, _, bad = stack.host.request(
        "POST", f"/api/pools/{bare}/access", json={"users": [{"name": "Bad"}]}
    )
    assert status == 400 and {e["field"] for e in bad["errors"]} == {"users[0].name", "users[0]"}


def test_a_grant_on_the_queue_is_applied_and_one_on_a_missing_pool_announced_as_rejected(stack, keys):
    pool_id = unique_pool("queued")
    nodes = stack.sdk_pool(pool_id, 1)
    users = [{"name": "bob", "sshPublicKey": keys["bob"].public}]
    stack.send({"kind": "grant-access", "poolId": pool_id, "users": users})
    event = stack.wait_for_event(
        lambda e: e["type"] == "access-granted" and e["poolId"] == pool_id, "access-granted from the queue"
    )
    assert [c["nodeId"] for c in event["connections"]] == nodes
    (record,) = stack.records(pool_id).values()
    assert ssh(keys["bob"], "bob", record["ip"], record["port"]).returncode == 0

    missing = unique_pool("gone")
    stack.send({"kind": "grant-access", "poolId": missing, "users": users})
    stack.send({"kind": "make-coffee", "poolId": missing, "users": users})
    rejected = stack.wait_for_event(
        lambda e: (
            e["type"] == "request-rejected" and e["poolId"] == missing and e["errors"][0]["field"] == "poolId"
        ),
        "the rejection of a grant on a missing pool",
    )
    assert "no pool" in rejected["errors"][0]["rule"]
    wrong_kind = stack.wait_for_event(
        lambda e: (
            e["type"] == "request-rejected" and e["poolId"] == missing and e["errors"][0]["field"] == "kind"
        ),
        "the rejection of an unknown kind",
    )
    assert "grant-access" in wrong_kind["errors"][0]["rule"]


def test_a_failed_change_does_not_hide_a_working_pool_nor_touch_someone_elses_user(stack, keys, tmp_path):
    from azure.batch import models

    pool_id = unique_pool("conflict")
    stack.send(request_for(pool_id, [{"name": "alice", "sshPublicKey": keys["alice"].public}], nodes=2))
    assert stack.wait_for_phase(pool_id)["phase"] == "completed"
    theirs = generate_key(tmp_path, "theirs")
    client = stack.batch.client()
    nodes = sorted(n["id"] for n in stack.batch.pool_nodes(pool_id)["nodes"])
    for node_id in nodes:  # someone else made a user "bob" on every node, outside the app
        client.create_node_user(
            pool_id, node_id, models.BatchNodeUserCreateOptions(name="bob", ssh_public_key=theirs.public)
        )
    status, answer = stack.grant(pool_id, [{"name": "bob", "sshPublicKey": keys["bob"].public}])
    assert status == 202, answer
    output = stack.finished(answer)
    assert output["outcome"] == "failed"
    assert {n["errors"]["bob"]["code"] for n in output["nodes"]} == {"UserNotCreatedByApp"}

    _, view = stack.pool(pool_id)
    assert view["phase"] == "failed" and view["kind"] == "grant-access"
    alice = next(u for u in view["pool"]["users"] if u["name"] == "alice")
    assert alice["activeNodes"] == 2 and view["pool"]["activeRecords"] == 2
    bob = next(u for u in view["pool"]["users"] if u["name"] == "bob")
    assert bob["activeNodes"] == 0 and sorted(bob["foreignNodes"]) == nodes  # reconcile leaves them alone
    assert {(r["user"], r["state"]) for r in view["records"]} == {("alice", "active")}  # no record of bob
    for record in view["records"]:
        login = client.get_node_remote_login_settings(pool_id, record["nodeId"])
        assert ssh(theirs, "bob", login.remote_login_ip_address, login.remote_login_port).returncode == 0
        assert ssh(keys["bob"], "bob", record["ip"], record["port"]).returncode != 0
        assert ssh(keys["alice"], "alice", record["ip"], record["port"]).returncode == 0
    status, _, _ = stack.host.request("DELETE", f"/api/pools/{pool_id}/users/bob")
    assert status == 404  # the app never created bob there, so it never removes him


def test_a_password_granted_on_an_existing_pool_logs_in_and_is_never_shown(stack):
    from devstack.ssh_client import run_with_password

    secret = "Correct-Horse-Grant-77"
    pool_id = unique_pool("pwgrant")
    (node_id,) = stack.sdk_pool(pool_id, 1)
    status, answer = stack.grant(pool_id, [{"name": "dana", "password": secret}])
    assert status == 202, answer
    assert stack.finished(answer)["outcome"] == "completed"
    (record,) = stack.records(pool_id).values()
    assert record["authMethod"] == "password"
    assert run_with_password(record["ip"], record["port"], "dana", secret).strip() == node_id
    history = stack.host.instance_status(
        answer["instanceId"], showHistory="true", showHistoryOutput="true", showInput="true"
    )
    _, view = stack.pool(pool_id)
    assert secret not in str(history) and secret not in str(view) and secret not in stack.host_log()
    assert "passwordCiphertext" not in str(view)
