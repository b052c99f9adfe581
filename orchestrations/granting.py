"""Granting access: `grant_staged` and `grant_on_nodes`, the steps every grant takes (pending records -> users
on the nodes -> active records, a chunk of nodes per activity), and the `grant_pool_access` orchestration
(users on an existing pool)."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations.fan_out import ACTIVITY_RETRY, grant_in_chunks
from orchestrations.retrying import TransientExhausted, call_batch, deadline_after
from provisioning import progress as phases
from provisioning.durations import format_timestamp
from provisioning.events import event, with_connections
from provisioning.grant_work import CHUNK_NODES, chunk_key
from provisioning.progress import custom_status, grant_failures, summarize_outcome

bp = df.Blueprint()
BUSY_SECONDS = 3600  # reconcile stays away from the pool while the grant runs (or until then, if it crashed)
# chunk order offset per staging: a later staging's chunks queue behind an earlier one's
BATCH_ORDER = 100_000


def grant_on_nodes(
    context: df.DurableOrchestrationContext,
    pool_id: str,
    request_id: str,
    users: list,
    jobs: list,
    tag: str = "",
) -> Generator[Any, Any, dict]:
    """Give each job's node (`{"nodeId", "users": [names], "ip"?, "port"?, "state"?}`, the endpoint as the
    node listing showed it) its users, CHUNK_NODES nodes per activity, with the nodes in the activities'
    inputs (for the few nodes reconcile finds; a poll's nodes go through `grant_staged`). Returns what
    `grant_staged` does."""
    jobs = sorted(jobs, key=lambda j: j["nodeId"])
    parts = [jobs[start : start + CHUNK_NODES] for start in range(0, len(jobs), CHUNK_NODES)]
    inputs = [
        {**_chunk_common(context, pool_id, request_id, users, n),
         "nodes": [{k: j[k] for k in ("nodeId", "users", "ip", "port", "state") if j.get(k) is not None}
                   for j in part]}
        for n, part in enumerate(parts)
    ]  # fmt: skip
    summary = yield from grant_in_chunks(context, inputs, tag, deadline_after(context, None))
    return _granted(summary, jobs)


def grant_staged(
    context: df.DurableOrchestrationContext,
    pool_id: str,
    request_id: str,
    users: list,
    staged: dict,
    tag: str = "",
    order_base: int = 0,
) -> Generator[Any, Any, dict]:
    """Give every user to each node of a staging (`{"work", "chunks", "nodes"}`, provisioning.grant_work),
    one activity per staged chunk, which reads its nodes itself: the history holds no node list. Each chunk
    writes its records `pending` before any of its users is created and `active` once they exist, so the app
    always knows what it created, and records appear as chunks finish. Returns the counts, the per-node
    failures, the problem nodes (no SSH endpoint) and the records written."""
    inputs = [
        {
            **_chunk_common(context, pool_id, request_id, users, order_base + n),
            "work": chunk_key(staged["work"], n),
        }
        for n in range(staged["chunks"])
    ]
    # how long Batch may stay unavailable before that counts as a failure
    summary = yield from grant_in_chunks(context, inputs, tag, deadline_after(context, None))
    names = [u["name"] for u in users]
    return _granted(summary, [{"nodeId": f["nodeId"], "users": names} for f in summary["failed"]])


def grant_staged_batch(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    """Sub-orchestration: `grant_staged` for a staging made while the run goes on polling for more nodes."""
    job = context.get_input()
    return (
        yield from grant_staged(
            context, job["poolId"], job["requestId"], job["users"], job["staged"], "", job["orderBase"]
        )
    )


def _chunk_common(
    context: df.DurableOrchestrationContext, pool_id: str, request_id: str, users: list, order: int
) -> dict:
    return {"poolId": pool_id, "requestId": request_id, "users": users,
            "grantedAt": format_timestamp(context.current_utc_datetime), "order": order}  # fmt: skip


def _granted(summary: dict, jobs: list) -> dict:
    problems = [
        {"nodeId": p["nodeId"], "state": "noendpoint", "reason": f"no SSH endpoint: {p['reason']}"}
        for p in sorted(summary["noEndpoint"], key=lambda p: p["nodeId"])
    ]
    granted = {
        "nodes": summary["nodes"],
        "granted": summary["granted"],
        "failures": grant_failures(jobs, summary["failed"]),
    }
    return {"granted": granted, "problems": problems, "written": summary["written"]}


def no_grants() -> dict:
    """What `grant_staged` returns for no node: nothing granted, written or failed."""
    return {"granted": {"nodes": 0, "granted": 0, "failures": []}, "problems": [], "written": 0}


def add_grants(total: dict, more: dict) -> dict:
    """Two `grant_staged` results (on different nodes) as one."""
    granted = {
        "nodes": total["granted"]["nodes"] + more["granted"]["nodes"],
        "granted": total["granted"]["granted"] + more["granted"]["granted"],
        "failures": sorted(
            total["granted"]["failures"] + more["granted"]["failures"], key=lambda f: f["nodeId"]
        ),
    }
    return {"granted": granted, "problems": total["problems"] + more["problems"],
            "written": total["written"] + more["written"]}  # fmt: skip


def finish_grant_work(
    context: df.DurableOrchestrationContext, pool_id: str, request_id: str, granted: int
) -> Generator[Any, Any, list]:
    """The run is done granting: its staged work rows go, and a sample of the connections it granted (read
    from the records, for the event) comes back."""
    yield context.call_activity_with_retry(
        "clear_grant_work", ACTIVITY_RETRY, {"poolId": pool_id, "run": context.instance_id}
    )
    if not granted:
        return []
    sample = yield context.call_activity_with_retry(
        "connection_sample", ACTIVITY_RETRY, {"poolId": pool_id, "requestId": request_id}
    )
    return sample["connections"]


def grant_pool_access(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    """Check the pool can take SSH users, manage it, then grant every user on every usable node. Batch being
    unavailable until the deadline ends the run `failed` with the service's error, announced as usual."""
    started = context.get_input()
    request, options = started["request"], started["options"]
    pool_id, users, request_id = request["poolId"], request["users"], request["requestId"]
    context.set_custom_status(custom_status(phases.CHECKING_POOL, pool_id, {}))
    deadline = deadline_after(context, options.get("deadlineSeconds"))
    try:
        checked = yield from call_batch(context, "inspect_pool", {"poolId": pool_id}, deadline)
    except TransientExhausted as exhausted:  # nothing changed yet
        return (yield from _announce(context, request, options, no_grants(), error=exhausted.error))
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
    stage = {"run": context.instance_id, "batch": 0}
    try:
        snapshot = yield from call_batch(context, "poll_pool", {"poolId": pool_id, "stage": stage}, deadline)
    except TransientExhausted as exhausted:
        yield from finish_grant_work(context, pool_id, request_id, 0)
        return (yield from _announce(context, request, options, no_grants(), error=exhausted.error, busy=at))
    usable = snapshot["usable"]
    counts = phases.progress(target=usable, ready=usable, users_total=usable * len(users))
    context.set_custom_status(custom_status(phases.GRANTING_ACCESS, pool_id, counts))
    granted = no_grants()
    if snapshot.get("staged"):
        granted = yield from grant_staged(context, pool_id, request_id, users, snapshot["staged"])
    connections = yield from finish_grant_work(context, pool_id, request_id, granted["granted"]["granted"])
    return (
        yield from _announce(
            context, request, options, granted, snapshot["problems"], connections, target=usable,
            pending=snapshot["counts"]["pending"], busy=at,
        )
    )  # fmt: skip


def _announce(
    context: df.DurableOrchestrationContext, request: dict, options: dict, granted: dict,
    problems: list | None = None, connections: list | None = None, *, target: int = 0, pending: int = 0,
    error: dict | None = None, busy: str | None = None,
) -> Generator[Any, Any, dict]:  # fmt: skip
    """The grant's output and its `access-granted` / `access-failed` event; the pool is free for reconcile
    again (`busy`: the grant had registered it)."""
    pool_id, users = request["poolId"], request["users"]
    output = summarize_outcome(
        request=request,
        granted=granted["granted"],
        problems=(problems or []) + granted["problems"],
        records_written=granted["written"],
        status_url=options["statusUrl"],
        target=target,
        error=error,
    )
    output["kind"] = "grant-access"
    output["nodesPending"] = pending  # they get the users from reconcile as they join
    at = format_timestamp(context.current_utc_datetime)
    body = event(
        "access-granted" if output["outcome"] != phases.FAILED else "access-failed",
        context.instance_id, at, pool_id, requestId=request["requestId"], outcome=output["outcome"],
        users=sorted(u["name"] for u in users), counts=output["progress"], statusUrl=options["statusUrl"],
    )  # fmt: skip
    if output.get("error"):
        body["error"] = output["error"]
    with_connections(body, connections or [], granted["granted"]["granted"])
    yield context.call_activity_with_retry("publish_event", ACTIVITY_RETRY, body)
    if busy:
        yield context.call_activity_with_retry(
            "set_managed_pool_state", ACTIVITY_RETRY, {"poolId": pool_id, "busyUntil": busy}
        )
    context.set_custom_status(custom_status(output["outcome"], pool_id, output["progress"]))
    return output


def _pool_error(checked: dict) -> dict:
    error = checked["error"]
    return {"field": "poolId", "rule": error["message"], "message": f"poolId: {error['message']}",
            "code": error["code"]}  # fmt: skip


bp.orchestration_trigger(context_name="context")(grant_pool_access)
bp.orchestration_trigger(context_name="context")(grant_staged_batch)
