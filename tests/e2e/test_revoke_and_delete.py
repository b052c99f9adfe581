"""Taking access and pools away: revoke only what the app granted (404 with no Batch call otherwise, other
people's users untouched), and DELETE /api/pools/{poolId} for a pool the app created."""

from __future__ import annotations

from azure.batch import models

from devstack.process import wait_until

from .conftest import request_for, ssh, unique_pool


def test_revoking_a_user_the_app_never_granted_is_404_without_a_batch_call(stack, keys):
    pool_id = unique_pool("revoke")
    stack.send(request_for(pool_id, [{"name": "alice", "sshPublicKey": keys["alice"].public}], nodes=1))
    assert stack.wait_for_phase(pool_id)["phase"] == "completed"
    stack.batch.reset_counters()
    status, _, body = stack.host.request("DELETE", f"/api/pools/{pool_id}/users/bob")
    assert status == 404 and "never granted user bob" in body["error"]
    status, _, _ = stack.host.request("DELETE", f"/api/pools/{unique_pool('typo')}/users/alice")
    assert status == 404
    assert sum(stack.batch.counters()["calls"].values()) == 0


def test_revoke_on_a_pool_the_app_does_not_manage_is_404_and_its_users_stay(stack, keys):
    pool_id = unique_pool("unmanaged")
    (node_id,) = stack.sdk_pool(pool_id, 1)
    client = stack.batch.client()
    client.create_node_user(
        pool_id, node_id, models.BatchNodeUserCreateOptions(name="alice", ssh_public_key=keys["alice"].public)
    )
    login = client.get_node_remote_login_settings(pool_id, node_id)
    stack.batch.reset_counters()
    status, _, body = stack.host.request("DELETE", f"/api/pools/{pool_id}/users/alice")
    assert status == 404, body
    assert sum(stack.batch.counters()["calls"].values()) == 0
    result = ssh(keys["alice"], "alice", login.remote_login_ip_address, login.remote_login_port)
    assert result.returncode == 0 and result.stdout.strip() == node_id


def test_deleting_a_pool_the_app_created_deletes_it_and_marks_its_records_deleted(stack, keys):
    pool_id = unique_pool("delete")
    stack.send(request_for(pool_id, [{"name": "alice", "sshPublicKey": keys["alice"].public}], nodes=2))
    assert stack.wait_for_phase(pool_id)["phase"] == "completed"
    status, _, answer = stack.host.request("DELETE", f"/api/pools/{pool_id}")
    assert status == 202, answer
    output = stack.finished(answer)
    assert output["deleted"] is True and output["recordsDeleted"] == 2

    def gone() -> bool:
        return pool_id not in {p.id for p in stack.batch.client().list_pools()}

    wait_until(gone, 60, f"pool {pool_id} to be deleted in Batch", interval=0.25)
    assert {r["state"] for r in stack.records(pool_id).values()} == {"deleted"}
    event = stack.wait_for_event(
        lambda e: e["type"] == "pool-deleted" and e["poolId"] == pool_id, "pool-deleted"
    )
    assert event["reason"] == "requested" and event["recordsDeleted"] == 2
    _, _, listing = stack.host.request("GET", "/api/pools")
    assert pool_id not in {p["poolId"] for p in listing["pools"]}
    status, _, _ = stack.host.request("DELETE", f"/api/pools/{pool_id}")
    assert status == 404
