"""Connection-record activities on Table storage: pending records before users are created, active records
after, finding expired and a user's records, and moving records to their end states."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from activities._common import settings
from provisioning.durations import parse_timestamp
from provisioning.pool_registry import ManagedPools
from provisioning.records import PENDING, build_records, record_for, row_key
from provisioning.storage import ConnectionRecords

bp = df.Blueprint()
log = logging.getLogger(__name__)

NOT_OWNED = "UserNotCreatedByApp"


def prepare_connection_records(payload: dict) -> dict:
    """Write a `pending` record for each (node, user) about to be granted, before any user is created.
    Returns, per node, the users the app already had there (`{name: isAdmin}`): only those it may replace."""
    pool_id, at = payload["poolId"], parse_timestamp(payload["at"])
    users = {u["name"]: u for u in payload["users"]}
    endpoints = payload["endpoints"]
    pending = [
        record_for(
            pool_id=pool_id,
            node_id=job["nodeId"],
            user=users[name],
            endpoint=endpoints.get(job["nodeId"]) or {},
            request_id=payload["requestId"],
            state=PENDING,
            at=at,
        )
        for job in payload["jobs"]
        for name in job["users"]
    ]
    store = ConnectionRecords(settings())
    owned_keys = set(store.prepare(pending))
    admin = {r.row_key: r.is_admin for r in store.live_for_pool(pool_id)} if owned_keys else {}
    owned: dict[str, dict[str, Any]] = {}
    for record in pending:
        if record.row_key in owned_keys:
            owned.setdefault(record.node_id, {})[record.user] = admin.get(record.row_key)
    log.info("pool %s: %d pending records, %d already the app's", pool_id, len(pending), len(owned_keys))
    return {"pending": len(pending) - len(owned_keys), "owned": owned}


def write_connection_records(payload: dict) -> dict:
    """Make the record of every granted (node, user) `active` with its SSH endpoint; drop the pending record
    of a user the node already had from someone else (it is not the app's)."""
    records = build_records(
        pool_id=payload["poolId"],
        request_id=payload["requestId"],
        users=payload["users"],
        grants=payload["grants"],
        endpoints=payload["endpoints"],
        granted_at=parse_timestamp(payload["grantedAt"]),
    )
    store = ConnectionRecords(settings())
    written = store.upsert(records)
    foreign = [
        row_key(grant["nodeId"], name)
        for grant in payload["grants"]
        for name, outcome in (grant.get("users") or {}).items()
        if (outcome.get("error") or {}).get("code") == NOT_OWNED
    ]
    dropped = store.drop_pending(payload["poolId"], foreign)
    if foreign:
        pairs = [tuple(key.split("|", 1)) for key in foreign]
        ManagedPools(settings()).note_foreign_users(payload["poolId"], pairs)
    log.info("pool %s: %d connection records active", payload["poolId"], written)
    return {"written": written, "dropped": dropped}


def find_expired_records(payload: dict) -> dict:
    """Live records whose expiry is at or before `now` (at most `limit`), as keys and what to delete."""
    found = ConnectionRecords(settings()).expired(
        parse_timestamp(payload["now"]), int(payload.get("limit", 1000))
    )
    return {"records": [_key(r) for r in found]}


def find_user_records(payload: dict) -> dict:
    """The live records of one user on one pool (the nodes where the app created that user)."""
    found = ConnectionRecords(settings()).live_for_pool(payload["poolId"])
    return {"records": [_key(r) for r in found if r.user == payload["user"]]}


def pool_access_state(payload: dict) -> dict:
    """A pool's live records (node, user, state, node state, expiry, key), for reconcile."""
    found = ConnectionRecords(settings()).live_for_pool(payload["poolId"])
    return {
        "records": [
            {
                **_key(r),
                "state": r.state,
                "nodeState": r.node_state,
                "expiresAt": r.to_json()["expiresAt"],
                "keyFingerprint": r.key_fingerprint,
                "isAdmin": r.is_admin,
            }
            for r in found
        ]
    }


def mark_records(payload: dict) -> dict:
    """Set an end state (expired, revoked, gone) on the given records that are still live."""
    keys = [(k[0], k[1]) for k in payload["keys"]]
    marked = ConnectionRecords(settings()).mark(keys, payload["state"], parse_timestamp(payload["at"]))
    log.info("%d connection records marked %s", marked, payload["state"])
    return {"marked": marked}


def mark_user_records(payload: dict) -> dict:
    """Set a state on every live record of one user on one pool (except on nodes where deletion failed)."""
    marked = ConnectionRecords(settings()).mark_user(
        payload["poolId"],
        payload["user"],
        payload["state"],
        parse_timestamp(payload["at"]),
        except_nodes=payload.get("exceptNodeIds") or (),
    )
    log.info(
        "pool %s user %s: %d records marked %s", payload["poolId"], payload["user"], marked, payload["state"]
    )
    return {"marked": marked}


def mark_pool_records(payload: dict) -> dict:
    """Set an end state (deleted, gone) on every live record of a pool."""
    marked = ConnectionRecords(settings()).mark_pool(
        payload["poolId"], payload["state"], parse_timestamp(payload["at"])
    )
    log.info("pool %s: %d records marked %s", payload["poolId"], marked, payload["state"])
    return {"marked": marked}


def refresh_node_states(payload: dict) -> dict:
    """Write the nodes' current states into their live records (only where they changed)."""
    changed = ConnectionRecords(settings()).refresh_node_states(payload["poolId"], payload["nodeStates"])
    return {"changed": changed}


def _key(record: Any) -> dict[str, Any]:
    return {
        "poolId": record.pool_id,
        "nodeId": record.node_id,
        "user": record.user,
        "partitionKey": record.partition_key,
        "rowKey": record.row_key,
    }


for _activity in (
    prepare_connection_records,
    write_connection_records,
    find_expired_records,
    find_user_records,
    pool_access_state,
    mark_records,
    mark_user_records,
    mark_pool_records,
    refresh_node_states,
):
    bp.activity_trigger(input_name="payload")(_activity)
