"""Granting access: `grant_on_nodes`, the steps every grant takes (endpoints -> pending records -> users on
the nodes -> active records), and the `grant_pool_access` orchestration (users on an existing pool)."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations.fan_out import ACTIVITY_RETRY, grant_in_chunks
from orchestrations.retrying import call_batch, deadline_after
from provisioning import progress as phases
from provisioning.durations import format_timestamp
from provisioning.events import event, with_connections
from provisioning.nodes import NodeCategory, classify_node_state
from provisioning.progress import custom_status, grant_failures, summarize_outcome

bp = df.Blueprint()
CHUNK_NODES = 50  # nodes per grant_node_users activity
BUSY_SECONDS = 3600  # reconcile stays away from the pool while the grant runs (or until then, if it crashed)


def grant_on_nodes(
    context: df.DurableOrchestrationContext, pool_id: str, request_id: str, users: list, jobs: list,
    tag: str = "",
) -> Generator[Any, Any, dict]:
    """Give each job's node (`{"nodeId", "users": [names], "ip"?, "port"?, "state"?}`, the endpoint as the
    node listing showed it) its users, CHUNK_NODES nodes per activity. Each chunk writes its records `pending`
    before any of its users is created and `active` once they exist, so the app always knows what it created,
    and records appear as chunks finish. Returns the summary, the per-node failures and the problem nodes."""
    at = format_timestamp(context.current_utc_datetime)
    jobs = sorted(jobs, key=lambda j: j["nodeId"])
    chunks = [jobs[start : start + CHUNK_NODES] for start in range(0, len(jobs), CHUNK_NODES)]
    deadline = deadline_after(context, None)  # how long Batch may stay unavailable before that counts
    summary = yield from grant_in_chunks(context, [
        {"poolId": pool_id, "requestId": request_id, "users": users, "grantedAt": at, "order": n,
         "nodes": [{k: j[k] for k in ("nodeId", "users", "ip", "port", "state") if j.get(k) is not None}
                   for j in chunk]}
        for n, chunk in enumerate(chunks)
    ], tag, deadline)  # fmt: skip
    missing = {p["nodeId"] for p in summary["noEndpoint"]}
    problems = [
        {"nodeId": p["nodeId"], "state": "noendpoint", "reason": f"no SSH endpoint: {p['reason']}"}
        for p in sorted(summary["noEndpoint"], key=lambda p: p["nodeId"])
    ]
    granted = {
        "nodes": summary["nodes"],
        "granted": summary["granted"],
        "failures": grant_failures([j for j in jobs if j["nodeId"] not in missing], summary["failed"]),
    }
    return {
        "granted": granted,
        "problems": problems,
        "written": summary["written"],
        "connections": summary["connections"],
    }


def no_grants() -> dict:
    """What `grant_on_nodes` returns for no node: nothing granted, written or failed."""
    return {"granted": {"nodes": 0, "granted": 0, "failures": []}, "problems": [], "written": 0,
            "connections": []}  # fmt: skip


def add_grants(total: dict, more: dict, sample: int = 100) -> dict:
    """Two `grant_on_nodes` results (on different nodes) as one."""
    granted = {
        "nodes": total["granted"]["nodes"] + more["granted"]["nodes"],
        "granted": total["granted"]["granted"] + more["granted"]["granted"],
        "failures": sorted(
            total["granted"]["failures"] + more["granted"]["failures"], key=lambda f: f["nodeId"]
        ),
    }
    connections = sorted(total["connections"] + more["connections"], key=lambda d: (d["user"], d["nodeId"]))
    return {"granted": granted, "problems": total["problems"] + more["problems"],
            "written": total["written"] + more["written"], "connections": connections[:sample]}  # fmt: skip


def grant_pool_access(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    """Check the pool can take SSH users, manage it, then grant every user on every usable node."""
    started = context.get_input()
    request, options = started["request"], started["options"]
    pool_id, users, request_id = request["poolId"], request["users"], request["requestId"]
    context.set_custom_status(custom_status(phases.CHECKING_POOL, pool_id, {}))
    deadline = deadline_after(context, options.get("deadlineSeconds"))
    checked = yield from call_batch(context, "inspect_pool", {"poolId": pool_id}, deadline)
    at = format_timestamp(context.current_utc_datetime)
    if not checked["ok"]:
        output = {
            "poolId": pool_id,
            "requestId": request_id,
            "kind": "grant-access",
            "outcome": phases.REJECTED,
            "status": checked["status"],
            "error": checked["error"],
            "statusUrl": options["statusUrl"],
        }
        rejected = event(
            "request-rejected", context.instance_id, at, pool_id,
            requestId=request_id, reason=phases.REJECTED, errors=[_pool_error(checked)],
        )  # fmt: skip
        yield context.call_activity_with_retry("publish_event", ACTIVITY_RETRY, rejected)
        context.set_custom_status(custom_status(phases.REJECTED, pool_id, {}))
        return output

    yield context.call_activity_with_retry(
        "register_managed_pool",
        ACTIVITY_RETRY,
        {"poolId": pool_id, "createdByApp": False, "requestId": request_id, "users": users, "at": at,
         "busyUntil": format_timestamp(context.current_utc_datetime + timedelta(seconds=BUSY_SECONDS))},
    )  # fmt: skip
    snapshot = yield from call_batch(
        context, "poll_pool", {"poolId": pool_id, "includeUsable": True}, deadline
    )
    usable = snapshot["usable"] or []
    endpoints = snapshot.get("endpoints") or {}
    # Nodes still on their way are no problem: reconcile grants them as they become usable.
    problems = [
        p for p in snapshot["problems"] if classify_node_state(p["state"]) is not NodeCategory.PENDING
    ]
    counts = phases.progress(target=len(usable), ready=len(usable), users_total=len(usable) * len(users))
    context.set_custom_status(custom_status(phases.GRANTING_ACCESS, pool_id, counts))
    names = [u["name"] for u in users]
    granted = yield from grant_on_nodes(
        context, pool_id, request_id, users, node_jobs(usable, names, endpoints)
    )
    output = summarize_outcome(
        request=request,
        granted=granted["granted"],
        problems=problems + granted["problems"],
        records_written=granted["written"],
        status_url=options["statusUrl"],
        target=len(usable),
    )
    output["kind"] = "grant-access"
    output["nodesPending"] = snapshot["counts"]["pending"]  # they get the users from reconcile as they join
    body = event(
        "access-granted" if output["outcome"] != phases.FAILED else "access-failed",
        context.instance_id, at, pool_id, requestId=request_id, outcome=output["outcome"],
        users=sorted(u["name"] for u in users), counts=output["progress"], statusUrl=options["statusUrl"],
    )  # fmt: skip
    if output.get("error"):
        body["error"] = output["error"]
    connections = with_connections(body, granted["connections"], granted["granted"]["granted"])
    yield context.call_activity_with_retry("publish_event", ACTIVITY_RETRY, connections)
    yield context.call_activity_with_retry(
        "set_managed_pool_state", ACTIVITY_RETRY, {"poolId": pool_id, "busyUntil": at}
    )
    context.set_custom_status(custom_status(output["outcome"], pool_id, output["progress"]))
    return output


def node_jobs(usable: list, names: list, endpoints: dict) -> list[dict]:
    """A grant job per usable node with the endpoint the listing showed (`[ip, port, state]`), if any."""
    jobs = []
    for node_id in usable:
        job: dict[str, Any] = {"nodeId": node_id, "users": names}
        found = endpoints.get(node_id)
        if found:
            job.update(ip=found[0], port=found[1], state=found[2])
        jobs.append(job)
    return jobs


def _pool_error(checked: dict) -> dict:
    error = checked["error"]
    return {"field": "poolId", "rule": error["message"], "message": f"poolId: {error['message']}",
            "code": error["code"]}  # fmt: skip


bp.orchestration_trigger(context_name="context")(grant_pool_access)
