"""Table and queue activities against Azurite: records written, found, marked; events published; twice."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from azure.data.tables import TableClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from activities._common import settings as app_settings
from activities.connection_records import (
    connection_sample,
    find_expired_records,
    find_user_records,
    mark_pool_records,
    mark_records,
)
from activities.events import publish_event
from activities.managed_pools import active_grants, list_managed_pools, register_managed_pool, set_grant_state
from provisioning.access import versioned
from provisioning.clients import close_async_clients
from provisioning.durations import format_timestamp
from provisioning.records import ACTIVE, record_for
from provisioning.storage import MAX_TRANSACTION, ConnectionRecords, GrantRecordWrites, RequestEntries

from .conftest import unique_pool

NOW = datetime.now(UTC).replace(microsecond=0)


def users(expiry: datetime) -> list[dict]:
    return [
        {
            "name": "alice",
            "admin": True,
            "expiryTime": format_timestamp(expiry),
            "sshPublicKey": "ssh-rsa AAAA",
            "keyType": "rsa",
            "keyFingerprint": "SHA256:a",
        },
        {
            "name": "bob",
            "admin": False,
            "expiryTime": format_timestamp(expiry + timedelta(days=1)),
            "sshPublicKey": "ssh-rsa BBBB",
            "keyType": "rsa",
            "keyFingerprint": "SHA256:b",
        },
    ]


def write(pool_id: str, nodes: int, expiry: datetime) -> int:
    """Active records for alice and bob on `nodes` nodes, written as a grant writes them."""
    records = [
        record_for(pool_id=pool_id, node_id=f"node-{i:04d}", user=user, request_id="r1", state=ACTIVE, at=NOW,
                   endpoint={"ip": "127.9.0.1", "port": 40000 + i, "state": "idle"})
        for i in range(nodes)
        for user in users(expiry)
    ]  # fmt: skip
    return ConnectionRecords(app_settings()).upsert(records)


def test_the_event_sample_is_every_user_of_the_first_nodes_of_that_request(app_env):
    pool_id = unique_pool()
    write(pool_id, 80, NOW + timedelta(hours=1))  # 160 active records of request r1
    carol = {**users(NOW)[0], "name": "carol"}
    endpoint = {"ip": "127.9.0.1", "port": 40000}
    other = record_for(pool_id=pool_id, node_id="node-0000", user=carol, request_id="r2", state=ACTIVE,
                       at=NOW, endpoint=endpoint)  # fmt: skip
    ConnectionRecords(app_settings()).upsert([other])
    sample = connection_sample({"poolId": pool_id, "requestId": "r1"})["connections"]
    assert len(sample) == 100
    assert [(c["nodeId"], c["user"]) for c in sample] == [
        (f"node-{i:04d}", user) for i in range(50) for user in ("alice", "bob")
    ]
    assert sample[3] == {"nodeId": "node-0001", "user": "bob", "ip": "127.9.0.1", "port": 40001}


def table(settings) -> TableClient:
    return TableClient.from_connection_string(settings.storage_connection, settings.connections_table)


def test_write_records_twice_leaves_one_record_per_node_and_user(app_env):
    pool_id = unique_pool()
    nodes = 60  # 120 records: more than one transaction for the partition
    assert 2 * nodes > MAX_TRANSACTION
    assert write(pool_id, nodes, NOW + timedelta(hours=1)) == 120
    assert write(pool_id, nodes, NOW + timedelta(hours=1)) == 120
    entities = list(table(app_env).query_entities("PartitionKey eq @pk", parameters={"pk": pool_id}))
    assert len(entities) == 120
    sample = next(e for e in entities if e["RowKey"] == "node-0003|bob")
    assert (sample["Ip"], sample["Port"], sample["State"], sample["UserName"]) == (
        "127.9.0.1",
        40003,
        "active",
        "bob",
    )
    assert isinstance(sample["ExpiresAt"], datetime)
    assert not any("password" in k.lower() for k in sample)


def test_find_expired_twice_then_mark_twice(app_env):
    expired_pool, fresh_pool = unique_pool(), unique_pool()
    write(expired_pool, 2, NOW - timedelta(minutes=1))  # alice expired, bob has a day left
    write(fresh_pool, 1, NOW + timedelta(hours=1))
    payload = {"now": format_timestamp(NOW), "limit": 100}
    found = find_expired_records(payload)
    assert found == find_expired_records(payload)
    mine = [r for r in found["records"] if r["poolId"] in (expired_pool, fresh_pool)]
    assert sorted((r["poolId"], r["nodeId"], r["user"]) for r in mine) == [
        (expired_pool, "node-0000", "alice"),
        (expired_pool, "node-0001", "alice"),
    ]
    keys = [[r["partitionKey"], r["rowKey"]] for r in mine]
    at = format_timestamp(NOW)
    assert mark_records({"keys": keys, "state": "expired", "at": at}) == {"marked": 2}
    assert mark_records({"keys": keys, "state": "expired", "at": at}) == {"marked": 0}
    states = {r.row_key: r.state for r in ConnectionRecords(app_env).for_pool(expired_pool)}
    assert states == {
        "node-0000|alice": "expired",
        "node-0001|alice": "expired",
        "node-0000|bob": "active",
        "node-0001|bob": "active",
    }
    assert not [r for r in find_expired_records(payload)["records"] if r["poolId"] == expired_pool]


def test_a_record_written_again_after_it_was_found_is_not_marked_and_marking_twice_is_safe(app_env):
    pool_id = unique_pool()
    write(pool_id, 3, NOW + timedelta(hours=1))
    found = find_user_records({"poolId": pool_id, "user": "bob"})["records"]
    assert len(found) == 3 and all(r["etag"] for r in found)
    write(pool_id, 1, NOW + timedelta(hours=1))  # meanwhile a grant wrote node-0000's records again
    keys = versioned([[r["partitionKey"], r["rowKey"]] for r in found], found)
    payload = {"keys": keys, "state": "revoked", "at": format_timestamp(NOW)}
    assert mark_records(payload) == {"marked": 2}
    assert mark_records(payload) == {"marked": 0}
    states = {r.row_key: r.state for r in ConnectionRecords(app_env).for_pool(pool_id)}
    assert states["node-0001|bob"] == states["node-0002|bob"] == "revoked"
    assert states["node-0000|bob"] == "active"  # still live: the next pass deletes that user again
    assert states["node-0000|alice"] == "active"
    unversioned = {
        "keys": [[found[0]["partitionKey"], found[0]["rowKey"]]],
        "state": "gone",
        "at": payload["at"],
    }
    assert mark_records(unversioned) == {"marked": 1}  # a key without an ETag marks whatever version is live


def test_publish_event_twice_delivers_two_copies_with_one_event_id(app_env):
    event = {
        "type": "pool-ready",
        "eventId": "provision-x:pool-ready",
        "poolId": "p",
        "counts": {"nodesIdle": 3},
    }
    assert publish_event(event) == {"published": True, "eventId": "provision-x:pool-ready"}
    assert publish_event(event)["published"]
    queue = QueueClient.from_connection_string(
        app_env.storage_connection, app_env.events_queue, message_decode_policy=TextBase64DecodePolicy()
    )
    messages = [json.loads(m.content) for m in queue.receive_messages(max_messages=10)]
    assert messages == [event, event]


def test_request_entries_show_the_newest_accepted_request_and_a_later_rejection(app_env):
    entries, pool_id = RequestEntries(app_env), unique_pool()
    assert entries.latest_for_pool(pool_id) is None
    entries.put(
        pool_id=pool_id,
        request_id="r1",
        state="accepted",
        source="http",
        instance_id="provision-r1",
        received_at=NOW,
    )
    entries.put(
        pool_id=pool_id,
        request_id="r2",
        state="rejected",
        source="queue",
        errors=[{"field": "vmSize", "rule": "is required", "message": "vmSize: is required"}],
        received_at=NOW + timedelta(seconds=1),
    )
    latest = entries.latest_for_pool(pool_id)
    assert latest["requestId"] == "r1" and latest["instanceId"] == "provision-r1"
    assert latest["latestRejection"]["errors"][0]["field"] == "vmSize"
    only_rejected = unique_pool()
    entries.put(pool_id=only_rejected, request_id="r3", state="rejected", source="queue", errors=[])
    assert entries.latest_for_pool(only_rejected)["state"] == "rejected"


def on_a_loop(settings, write, *args):
    """A GrantRecordWrites method run as the grant activity runs it, on an event loop."""

    async def run():
        try:
            return await getattr(GrantRecordWrites(settings, ConnectionRecords(settings)), write)(*args)
        finally:
            await close_async_clients()

    return asyncio.run(run())


def test_pending_records_come_first_and_say_which_users_are_already_the_apps(app_env):
    pool_id, store = unique_pool(), ConnectionRecords(app_env)
    endpoint = {"ip": "127.9.0.1", "port": 40000, "state": "idle"}
    alice, bob = users(NOW + timedelta(hours=1))

    def records(state, *who):
        return [record_for(pool_id=pool_id, node_id="node-0000", user=u, endpoint=endpoint, request_id="r1",
                           state=state, at=NOW) for u in who]  # fmt: skip

    assert on_a_loop(app_env, "prepare", records("pending", alice, bob)) == []  # none was the app's before
    states = {r.row_key: r.state for r in store.for_pool(pool_id)}
    assert states == {"node-0000|alice": "pending", "node-0000|bob": "pending"}
    # revoke and expiry find pending records: the user may exist already
    assert [r["user"] for r in find_user_records({"poolId": pool_id, "user": "bob"})["records"]] == ["bob"]
    assert on_a_loop(app_env, "activate", records("active", alice), {"node-0000|alice"}) == 1
    assert store.drop_pending(pool_id, ["node-0000|bob"]) == 1  # bob there is someone else's: no record
    assert {r.row_key: r.state for r in store.for_pool(pool_id)} == {"node-0000|alice": "active"}
    # alice is the app's: her record stays as it was; bob's is written pending again
    assert on_a_loop(app_env, "prepare", records("pending", alice, bob)) == ["node-0000|alice"]
    states = {r.row_key: r.state for r in store.for_pool(pool_id)}
    assert states == {"node-0000|alice": "active", "node-0000|bob": "pending"}
    assert store.admin_flags(pool_id, ["node-0000|alice"]) == {"node-0000|alice": True}
    assert mark_pool_records({"poolId": pool_id, "state": "deleted", "at": format_timestamp(NOW)}) == {
        "marked": 2
    }


def test_activating_a_pending_record_that_vanished_writes_the_record_whole(app_env):
    """A pending record deleted between the grant's two writes (its user was someone else's, found by a run
    of the same grant): activation writes every record of the transaction whole instead of failing."""
    pool_id, store = unique_pool(), ConnectionRecords(app_env)
    endpoint = {"ip": "127.9.0.1", "port": 40000, "state": "idle"}
    nodes = [f"node-{i:04d}" for i in range(3)]
    alice = users(NOW + timedelta(hours=1))[0]

    def records(state):
        return [record_for(pool_id=pool_id, node_id=n, user=alice, endpoint=endpoint, request_id="r1",
                           state=state, at=NOW) for n in nodes]  # fmt: skip

    assert on_a_loop(app_env, "prepare", records("pending")) == []
    assert store.drop_pending(pool_id, ["node-0001|alice"]) == 1
    written = {f"{n}|alice" for n in nodes}
    assert on_a_loop(app_env, "activate", records("active"), written) == 3
    found = {r.row_key: r for r in store.for_pool(pool_id)}
    assert {k: r.state for k, r in found.items()} == {f"{n}|alice": "active" for n in nodes}
    rewritten = found["node-0001|alice"]
    assert rewritten.ip == "127.9.0.1" and rewritten.key_fingerprint == "SHA256:a"


def test_a_managed_pool_keeps_its_grants_and_created_by_app_never_downgrades(app_env):
    pool_id = unique_pool()
    at = format_timestamp(NOW)
    alice, bob = users(NOW + timedelta(hours=1))
    bob = dict(bob, hasPassword=True, passwordCiphertext="gAAAA-cipher")
    first = {"poolId": pool_id, "createdByApp": True, "requestId": "r1", "users": [alice], "at": at,
             "deleteAfter": format_timestamp(NOW + timedelta(days=1))}  # fmt: skip
    assert register_managed_pool(first) == {"createdByApp": True, "grants": 1}
    later = {"poolId": pool_id, "createdByApp": False, "requestId": "g1", "users": [bob], "at": at}
    assert register_managed_pool(later) == {"createdByApp": True, "grants": 1}
    (listed,) = [p for p in list_managed_pools({})["pools"] if p["poolId"] == pool_id]
    assert listed["createdByApp"] and listed["deleteAfter"] == format_timestamp(NOW + timedelta(days=1))
    grants = active_grants({"poolId": pool_id, "now": at})["users"]
    assert [g["name"] for g in grants] == ["alice", "bob"]
    assert grants[1]["passwordCiphertext"] == "gAAAA-cipher" and grants[0]["sshPublicKey"] == "ssh-rsa AAAA"
    set_grant_state({"poolId": pool_id, "user": "alice", "state": "revoked", "at": at})
    assert [g["name"] for g in active_grants({"poolId": pool_id, "now": at})["users"]] == ["bob"]
    assert set_grant_state({"poolId": pool_id, "user": "nobody", "state": "revoked", "at": at}) == {
        "changed": False
    }


def test_a_new_pool_under_the_id_of_a_deleted_one_inherits_nothing(app_env):
    from activities.managed_pools import set_managed_pool_state

    pool_id, at = unique_pool(), format_timestamp(NOW)
    alice, bob = users(NOW + timedelta(hours=1))
    register_managed_pool(
        {"poolId": pool_id, "createdByApp": True, "requestId": "r1", "users": [alice], "at": at}
    )
    set_managed_pool_state({"poolId": pool_id, "state": "deleted", "at": at})
    again = {"poolId": pool_id, "createdByApp": False, "requestId": "g1", "users": [bob], "at": at}
    assert register_managed_pool(again) == {"createdByApp": False, "grants": 1}
    assert [g["name"] for g in active_grants({"poolId": pool_id, "now": at})["users"]] == ["bob"]
