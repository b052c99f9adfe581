"""Managed-pool activities on Table storage: start managing a pool and keep its grants, change a grant's or a
pool's state, list the pools to reconcile, read and clear a run's staged grant work."""

from __future__ import annotations

import logging

import azure.durable_functions as df

from activities._common import settings
from provisioning.durations import parse_timestamp
from provisioning.grant_work import GrantWork
from provisioning.pool_registry import ManagedPools

bp = df.Blueprint()
log = logging.getLogger(__name__)


def register_managed_pool(payload: dict) -> dict:
    """Manage the pool from now on (created by the app, or first granted on) and keep the request's grants."""
    at = parse_timestamp(payload["at"])
    pools = ManagedPools(settings())
    entry = pools.register(
        payload["poolId"],
        created_by_app=bool(payload.get("createdByApp")),
        request_id=payload["requestId"],
        delete_after=payload.get("deleteAfter"),
        busy_until=payload.get("busyUntil"),
        at=at,
    )
    saved = pools.save_grants(payload["poolId"], payload.get("users") or [], payload["requestId"], at)
    log.info(
        "pool %s managed (created by app: %s), %d grants", payload["poolId"], entry["createdByApp"], saved
    )
    return {"createdByApp": entry["createdByApp"], "grants": saved}


def active_grants(payload: dict) -> dict:
    """The pool's grants active and unexpired at `now`: the users every usable node should have."""
    users = ManagedPools(settings()).grants(payload["poolId"], active_at=parse_timestamp(payload["now"]))
    return {"users": users}


def set_grant_state(payload: dict) -> dict:
    changed = ManagedPools(settings()).set_grant_state(
        payload["poolId"], payload["user"], payload["state"], parse_timestamp(payload["at"])
    )
    return {"changed": changed}


def set_managed_pool_state(payload: dict) -> dict:
    """A pool's state (managed, deleting, deleted, gone) and, when given, its latest node counts and until
    when a request works on it."""
    pools = ManagedPools(settings())
    if payload.get("state"):
        pools.set_state(payload["poolId"], payload["state"], parse_timestamp(payload["at"]))
    if payload.get("nodeCounts") is not None:
        pools.set_node_counts(payload["poolId"], payload["nodeCounts"])
    if payload.get("busyUntil"):
        pools.set_busy_until(payload["poolId"], parse_timestamp(payload["busyUntil"]))
    return {"poolId": payload["poolId"]}


def list_managed_pools(payload: dict) -> dict:
    """Pools the app still manages (not deleted or gone): whether it created them, their deleteAfter."""
    pools = [
        {
            "poolId": p["poolId"],
            "createdByApp": p["createdByApp"],
            "deleteAfter": p["deleteAfter"],
            "nodeCounts": p["nodeCounts"],
            "busyUntil": p["busyUntil"],
        }
        for p in ManagedPools(settings()).all()
        if p["state"] in ("managed", "deleting")
    ]
    return {"pools": pools}


def clear_grant_work(payload: dict) -> dict:
    """Delete the grant work a run staged on the pool (provisioning.grant_work); safe to run again."""
    cleared = GrantWork(settings()).clear(payload["poolId"], payload["run"])
    return {"cleared": cleared}


def read_grant_work(payload: dict) -> dict:
    """The node ids of one staged chunk (to name them when the chunk failed for good)."""
    return {"nodeIds": [node[0] for node in GrantWork(settings()).load(payload["poolId"], payload["work"])]}


for _activity in (
    register_managed_pool,
    active_grants,
    set_grant_state,
    set_managed_pool_state,
    list_managed_pools,
    clear_grant_work,
    read_grant_work,
):
    bp.activity_trigger(input_name="payload")(_activity)
