"""Connection-record activities on Table storage: a request's connections for its event, finding expired and a
user's records, and moving records to their end states. (Granting writes its own records: node_users.)"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from activities._common import settings
from provisioning.durations import parse_timestamp
from provisioning.events import MAX_CONNECTIONS_IN_EVENT
from provisioning.storage import ConnectionRecords

bp = df.Blueprint()
log = logging.getLogger(__name__)


def connection_sample(payload: dict) -> dict:
    """The first MAX_CONNECTIONS_IN_EVENT connections a request granted on a pool (by node, then user: every
    user of the first nodes), read from its active records, for the event that tells the requester."""
    found = ConnectionRecords(settings()).active_for_request(
        payload["poolId"], payload["requestId"], MAX_CONNECTIONS_IN_EVENT
    )
    return {"connections": [{"nodeId": r.node_id, "user": r.user, "ip": r.ip, "port": r.port} for r in found]}


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
    keys = [tuple(k) for k in payload["keys"]]  # [pk, rk] or [pk, rk, etag] (marked only if unchanged)
    marked = ConnectionRecords(settings()).mark(keys, payload["state"], parse_timestamp(payload["at"]))
    log.info("%d connection records marked %s", marked, payload["state"])
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
        "etag": record.etag,  # the version read: marking it later is conditional on it
    }


for _activity in (
    connection_sample,
    find_expired_records,
    find_user_records,
    pool_access_state,
    mark_records,
    mark_pool_records,
    refresh_node_states,
):
    bp.activity_trigger(input_name="payload")(_activity)
