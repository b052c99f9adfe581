"""Granting access: `grant_on_nodes`, the steps every grant takes (endpoints -> pending records -> users on
the nodes -> active records), and the `grant_pool_access` orchestration (users on an existing pool)."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations.fan_out import ACTIVITY_RETRY, fan_out
from orchestrations.retrying import call_batch, deadline_after
from provisioning import progress as phases
from provisioning.durations import format_timestamp
from provisioning.events import connection_details, event, with_connections
from provisioning.nodes import NodeCategory, classify_node_state
from provisioning.pool_registry import public_user
from provisioning.progress import custom_status, summarize_outcome

bp = df.Blueprint()
BUSY_SECONDS = 3600  # reconcile stays away from the pool while the grant runs (or until then, if it crashed)


def grant_on_nodes(
    context: df.DurableOrchestrationContext, pool_id: str, request_id: str, users: list, jobs: list
) -> Generator[Any, Any, dict]:
    """Give each job's node (`{"nodeId", "users": [names]}`) its users. Records are written `pending` before
    any user is created and turn `active` once it exists, so the app always knows what it created."""
    at = format_timestamp(context.current_utc_datetime)
    deadline = deadline_after(context, None)  # how long Batch may stay unavailable before that counts
    node_ids = sorted({j["nodeId"] for j in jobs})
    found = yield from call_batch(
        context, "gather_ssh_endpoints", {"poolId": pool_id, "nodeIds": node_ids}, deadline
    )
    problems = [
        {"nodeId": node_id, "state": "noendpoint", "reason": f"no SSH endpoint: {reason}"}
        for node_id, reason in sorted(found["missing"].items())
    ]
    jobs = [j for j in jobs if j["nodeId"] in found["endpoints"]]
    shown = [public_user(u) for u in users]
    prepared = yield context.call_activity_with_retry(
        "prepare_connection_records",
        ACTIVITY_RETRY,
        {"poolId": pool_id, "requestId": request_id, "users": shown, "jobs": jobs,
         "endpoints": found["endpoints"], "at": at},
    )  # fmt: skip
    by_name = {u["name"]: u for u in users}
    grants = yield from fan_out(
        context,
        "create_node_users",
        [
            {"poolId": pool_id, "nodeId": j["nodeId"], "users": [by_name[n] for n in j["users"]],
             "owned": prepared["owned"].get(j["nodeId"], {})}
            for j in jobs
        ],
        deadline,
    )  # fmt: skip
    wrote = yield context.call_activity_with_retry(
        "write_connection_records",
        ACTIVITY_RETRY,
        {"poolId": pool_id, "requestId": request_id, "users": shown, "grants": grants,
         "endpoints": found["endpoints"], "grantedAt": at},
    )  # fmt: skip
    return {
        "grants": grants,
        "problems": problems,
        "written": wrote["written"],
        "endpoints": found["endpoints"],
    }


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
    # Nodes still on their way are no problem: reconcile grants them as they become usable.
    problems = [
        p for p in snapshot["problems"] if classify_node_state(p["state"]) is not NodeCategory.PENDING
    ]
    counts = phases.progress(target=len(usable), ready=len(usable), users_total=len(usable) * len(users))
    context.set_custom_status(custom_status(phases.GRANTING_ACCESS, pool_id, counts))
    names = [u["name"] for u in users]
    granted = yield from grant_on_nodes(
        context, pool_id, request_id, users, [{"nodeId": n, "users": names} for n in usable]
    )
    output = summarize_outcome(
        request=request,
        grants=granted["grants"],
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
    connections = connection_details(granted["grants"], granted["endpoints"])
    yield context.call_activity_with_retry(
        "publish_event", ACTIVITY_RETRY, with_connections(body, connections)
    )
    yield context.call_activity_with_retry(
        "set_managed_pool_state", ACTIVITY_RETRY, {"poolId": pool_id, "busyUntil": at}
    )
    context.set_custom_status(custom_status(output["outcome"], pool_id, output["progress"]))
    return output


def _pool_error(checked: dict) -> dict:
    error = checked["error"]
    return {"field": "poolId", "rule": error["message"], "message": f"poolId: {error['message']}",
            "code": error["code"]}  # fmt: skip


bp.orchestration_trigger(context_name="context")(grant_pool_access)
