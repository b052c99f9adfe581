"""Connection-record activities on Table storage: write a pool's records, find expired ones, mark records."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from activities._common import settings
from provisioning.durations import parse_timestamp
from provisioning.records import build_records
from provisioning.storage import ConnectionRecords

bp = df.Blueprint()
log = logging.getLogger(__name__)


def write_connection_records(payload: dict) -> dict[str, Any]:
    """Upsert a record per granted (node, user) with its SSH endpoint (transactions of <= 100 a partition)."""
    records = build_records(
        pool_id=payload["poolId"],
        request_id=payload["requestId"],
        users=payload["users"],
        grants=payload["grants"],
        endpoints=payload["endpoints"],
        granted_at=parse_timestamp(payload["grantedAt"]),
    )
    written = ConnectionRecords(settings()).upsert(records)
    log.info("pool %s: %d connection records written", payload["poolId"], written)
    return {"written": written}


def find_expired_records(payload: dict) -> dict[str, Any]:
    """Active records whose expiry is at or before `now` (at most `limit`), as keys and what to delete."""
    found = ConnectionRecords(settings()).expired(
        parse_timestamp(payload["now"]), int(payload.get("limit", 1000))
    )
    return {
        "records": [
            {
                "poolId": r.pool_id,
                "nodeId": r.node_id,
                "user": r.user,
                "partitionKey": r.partition_key,
                "rowKey": r.row_key,
            }
            for r in found
        ]
    }


def mark_records(payload: dict) -> dict[str, Any]:
    """Set a state (expired, revoked) on the given records that are still active."""
    keys = [(k[0], k[1]) for k in payload["keys"]]
    marked = ConnectionRecords(settings()).mark(keys, payload["state"], parse_timestamp(payload["at"]))
    log.info("%d connection records marked %s", marked, payload["state"])
    return {"marked": marked}


def mark_user_records(payload: dict) -> dict[str, Any]:
    """Set a state on every active record of one user on one pool (except on nodes where deletion failed)."""
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


for _activity in (write_connection_records, find_expired_records, mark_records, mark_user_records):
    bp.activity_trigger(input_name="payload")(_activity)
