"""Reconcile (the singleton `reconcile_access`, one `reconcile_pool` per managed pool): nodes that joined get
the pool's users and records, records of vanished nodes and pools become `gone`, node states are refreshed,
pools past their deleteAfter are deleted. Pools and nodes that are already right cost no Batch call beyond
one listing, and no write."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.fan_out import ACTIVITY_RETRY
from orchestrations.granting import grant_on_nodes
from orchestrations.pool_deletion import delete_pool_steps
from orchestrations.retrying import call_batch, deadline_after
from provisioning.durations import format_timestamp
from provisioning.events import event
from provisioning.pool_registry import GONE as POOL_GONE
from provisioning.reconcile import plan_pool
from provisioning.records import GONE

bp = df.Blueprint()


def reconcile_access(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    now = format_timestamp(context.current_utc_datetime)
    listing = yield context.call_activity_with_retry("list_managed_pools", ACTIVITY_RETRY, {})
    context.set_custom_status({"phase": "reconciling", "pools": len(listing["pools"])})
    runs = [
        context.call_sub_orchestrator(
            "reconcile_pool", {**pool, "now": now}, f"{context.instance_id}:{pool['poolId'].lower()}:{now}"
        )
        for pool in listing["pools"]
    ]
    results = (yield context.task_all(runs)) if runs else []
    changed = [r for r in results if r.get("changed")]
    context.set_custom_status({"phase": "done", "pools": len(results), "changed": len(changed)})
    return {"pools": len(results), "changed": changed, "errors": [r for r in results if r.get("error")]}


def reconcile_pool(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    job = context.get_input()
    pool_id, now = job["poolId"], job["now"]
    if job.get("busyUntil") and job["busyUntil"] > now:
        return {"poolId": pool_id, "changed": False, "busy": True}  # a request is granting on it right now
    try:
        if job.get("createdByApp") and job.get("deleteAfter") and job["deleteAfter"] <= now:
            deleted = yield from delete_pool_steps(context, pool_id, "deleteAfter")
            return {"poolId": pool_id, "changed": True, "poolDeleted": True, **deleted}
        changes = yield from _bring_up_to_date(context, job)
    except Exception as exc:  # noqa: BLE001 - one pool's failure must not stop the others; next period retries
        return {"poolId": pool_id, "error": str(exc).splitlines()[0][:300] if str(exc) else repr(exc)}
    if changes["changed"]:
        body = event("nodes-reconciled", context.instance_id, now, pool_id, **{
            k: v for k, v in changes.items() if k not in ("poolId", "changed")
        })  # fmt: skip
        yield context.call_activity_with_retry("publish_event", ACTIVITY_RETRY, body)
    return changes


def _bring_up_to_date(context: df.DurableOrchestrationContext, job: dict) -> Generator[Any, Any, dict]:
    pool_id, now = job["poolId"], job["now"]
    state = yield context.call_activity_with_retry("pool_access_state", ACTIVITY_RETRY, {"poolId": pool_id})
    grants = yield context.call_activity_with_retry(
        "active_grants", ACTIVITY_RETRY, {"poolId": pool_id, "now": now}
    )
    if not state["records"] and not grants["users"]:
        return {"poolId": pool_id, "changed": False}
    survey = yield from call_batch(context, "survey_pool", {"poolId": pool_id}, deadline_after(context, None))
    plan = plan_pool(survey, state["records"], grants["users"])
    if plan["poolGone"]:
        marked = yield context.call_activity_with_retry(
            "mark_pool_records", ACTIVITY_RETRY, {"poolId": pool_id, "state": GONE, "at": now}
        )
        yield context.call_activity_with_retry(
            "set_managed_pool_state", ACTIVITY_RETRY, {"poolId": pool_id, "state": POOL_GONE, "at": now}
        )
        return {"poolId": pool_id, "changed": True, "poolGone": True, "recordsGone": marked["marked"]}
    changes: dict[str, Any] = {"poolId": pool_id, "recordsGone": 0, "nodesRefreshed": 0, "usersGranted": 0}
    if plan["gone"]:
        marked = yield context.call_activity_with_retry(
            "mark_records", ACTIVITY_RETRY, {"keys": plan["gone"], "state": GONE, "at": now}
        )
        changes["recordsGone"] = marked["marked"]
    if plan["nodeStates"]:
        refreshed = yield context.call_activity_with_retry(
            "refresh_node_states", ACTIVITY_RETRY, {"poolId": pool_id, "nodeStates": plan["nodeStates"]}
        )
        changes["nodesRefreshed"] = refreshed["changed"]
    if plan["jobs"]:
        request_id = f"reconcile-{now}"
        jobs = [{**job, **_endpoint(survey["nodes"].get(job["nodeId"]) or {})} for job in plan["jobs"]]
        granted = yield from grant_on_nodes(context, pool_id, request_id, grants["users"], jobs)
        changes["usersGranted"] = granted["written"]
        changes["nodesGranted"] = sorted(j["nodeId"] for j in plan["jobs"])
    if plan["nodeCounts"] != job.get("nodeCounts"):
        yield context.call_activity_with_retry(
            "set_managed_pool_state", ACTIVITY_RETRY, {"poolId": pool_id, "nodeCounts": plan["nodeCounts"]}
        )
    changes["changed"] = bool(changes["recordsGone"] or changes["nodesRefreshed"] or changes["usersGranted"])
    return changes


def _endpoint(node: dict) -> dict:
    """The node's SSH endpoint as the survey's listing showed it (the grant then asks Batch for no other)."""
    if not node.get("ip"):
        return {}
    return {"ip": node["ip"], "port": node["port"], "state": node["state"]}


bp.orchestration_trigger(context_name="context")(reconcile_access)
bp.orchestration_trigger(context_name="context")(reconcile_pool)
