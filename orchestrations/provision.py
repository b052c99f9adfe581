"""`provision_pool`: image -> pool -> idle nodes -> users on every node -> connection records -> event."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations.fan_out import ACTIVITY_RETRY, fan_out
from provisioning import progress as phases
from provisioning.durations import format_timestamp
from provisioning.nodes import next_poll_interval, wait_decision
from provisioning.progress import custom_status, summarize_outcome

bp = df.Blueprint()


class ProvisioningFailed(Exception):
    """A business failure with the service's (or our) code and message; ends the run as `failed`."""

    def __init__(self, error: dict[str, Any], problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{error['code']}: {error['message']}")
        self.error = error
        self.problems = problems or []


class Run:
    """The run's progress, mirrored into the custom status on every change of phase or counts."""

    def __init__(self, context: df.DurableOrchestrationContext, request: dict[str, Any]) -> None:
        self.context = context
        self.request = request
        target = request["nodes"]["dedicated"] + request["nodes"]["spot"]
        self.counts = phases.progress(target=target, users_total=target * len(request["users"]))

    def phase(self, name: str, **counts: int) -> None:
        self.counts.update(counts)
        self.context.set_custom_status(custom_status(name, self.request["poolId"], dict(self.counts)))


def wait_for_idle_nodes(
    context: df.DurableOrchestrationContext, run: Run, options: dict[str, Any]
) -> Generator[Any, Any, tuple[list[str], list[dict[str, Any]]]]:
    """Poll with durable timers and backoff: until the nodes settle, the deadline passes or it fails."""
    deadline = context.current_utc_datetime + timedelta(seconds=options["deadlineSeconds"])
    interval = None
    while True:
        deadline_passed = context.current_utc_datetime >= deadline
        snapshot = yield context.call_activity_with_retry(
            "poll_pool", ACTIVITY_RETRY, {"poolId": run.request["poolId"], "includeUsable": deadline_passed}
        )
        counts = snapshot["counts"]
        run.phase(
            phases.WAITING_FOR_NODES,
            nodesIdle=counts["ready"],
            nodesFailed=counts["failed"] + counts["unavailable"],
        )
        decision = wait_decision(snapshot, deadline_passed=deadline_passed)
        if decision["action"] == "proceed":
            return decision["usable"], snapshot["problems"]
        if decision["action"] == "fail":
            raise ProvisioningFailed(
                {"code": decision["code"], "message": decision["message"]}, snapshot["problems"]
            )
        interval = next_poll_interval(interval, options["pollFirstSeconds"], options["pollMaxSeconds"])
        yield context.create_timer(min(context.current_utc_datetime + timedelta(seconds=interval), deadline))


def pool_event(output: dict[str, Any], instance_id: str, at: str) -> dict[str, Any]:
    """`pool-ready` (completed or partial) or `pool-failed`, with counts and the status URL (no key in it)."""
    kind = "pool-failed" if output["outcome"] == phases.FAILED else "pool-ready"
    event = {
        "type": kind,
        "eventId": f"{instance_id}:{kind}",
        "poolId": output["poolId"],
        "requestId": output["requestId"],
        "instanceId": instance_id,
        "outcome": output["outcome"],
        "counts": output["progress"],
        "statusUrl": output["statusUrl"],
        "occurredAt": at,
    }
    if output.get("error"):
        event["error"] = output["error"]
    return event


def provision_pool(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    started = context.get_input()
    request, options = started["request"], started["options"]
    pool_id, users = request["poolId"], request["users"]
    run = Run(context, request)
    image, grants, problems, error, written, pool_is_ours = None, [], [], None, 0, False
    try:
        run.phase(phases.SELECTING_IMAGE)
        chosen = yield context.call_activity_with_retry(
            "select_pool_image", ACTIVITY_RETRY, {"poolId": pool_id, "image": request["image"]}
        )
        if not chosen["ok"]:
            raise ProvisioningFailed(chosen["error"])
        image = chosen["image"]

        run.phase(phases.CREATING_POOL)
        created = yield context.call_activity_with_retry(
            "create_pool", ACTIVITY_RETRY, {"request": request, "image": image}
        )
        if not created["ok"]:
            raise ProvisioningFailed(created["error"])
        pool_is_ours = True

        usable, problems = yield from wait_for_idle_nodes(context, run, options)

        run.phase(phases.GRANTING_ACCESS, nodesIdle=len(usable), nodesFailed=len(problems))
        grants = yield from fan_out(
            context, "create_node_users", [{"poolId": pool_id, "nodeId": n, "users": users} for n in usable]
        )
        granted = sum(1 for g in grants for r in (g.get("users") or {}).values() if r.get("ok"))

        run.phase(phases.RECORDING_CONNECTIONS, usersGranted=granted)
        reachable = [g["nodeId"] for g in grants if any(r.get("ok") for r in (g.get("users") or {}).values())]
        found = yield context.call_activity_with_retry(
            "gather_ssh_endpoints", ACTIVITY_RETRY, {"poolId": pool_id, "nodeIds": reachable}
        )
        for node_id, reason in sorted(found["missing"].items()):
            problems.append(
                {"nodeId": node_id, "state": "noendpoint", "reason": f"no SSH endpoint: {reason}"}
            )
        grants = [g for g in grants if g["nodeId"] not in found["missing"]]
        wrote = yield context.call_activity_with_retry(
            "write_connection_records",
            ACTIVITY_RETRY,
            {
                "poolId": pool_id,
                "requestId": request["requestId"],
                "users": users,
                "grants": grants,
                "endpoints": found["endpoints"],
                "grantedAt": format_timestamp(context.current_utc_datetime),
            },
        )
        written = wrote["written"]
    except ProvisioningFailed as failure:
        error, problems = failure.error, failure.problems or problems
    except Exception as exc:  # noqa: BLE001 - an activity failed after its retries: report it, do not lose the event
        error = {
            "code": "ActivityFailed",
            "message": str(exc).splitlines()[0][:500] if str(exc) else repr(exc),
        }

    output = summarize_outcome(
        request=request,
        grants=grants,
        problems=problems,
        records_written=written,
        image=image,
        error=error,
        status_url=options["statusUrl"],
    )
    if output["outcome"] == phases.FAILED and options["deletePoolOnFailure"] and pool_is_ours:
        deleted = yield context.call_activity_with_retry("delete_pool", ACTIVITY_RETRY, {"poolId": pool_id})
        output["poolDeleted"] = deleted["deleted"]

    run.phase(phases.PUBLISHING, **{k: v for k, v in output["progress"].items() if k in run.counts})
    at = format_timestamp(context.current_utc_datetime)
    yield context.call_activity_with_retry(
        "publish_pool_event", ACTIVITY_RETRY, pool_event(output, context.instance_id, at)
    )
    run.phase(output["outcome"])
    return output


bp.orchestration_trigger(context_name="context")(provision_pool)
