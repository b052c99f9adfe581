"""`provision_pool`: image -> pool (now managed) -> users on every node, with their connection records, as the
nodes become idle -> `pool-ready` / `pool-failed` event with the connection details."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations.fan_out import ACTIVITY_RETRY
from orchestrations.granting import BATCH_ORDER, add_grants, finish_grant_work, grant_staged, no_grants
from orchestrations.retrying import TransientExhausted, call_batch, deadline_after
from provisioning import progress as phases
from provisioning.durations import format_timestamp
from provisioning.events import with_connections
from provisioning.nodes import poll_interval, wait_decision
from provisioning.progress import custom_status, summarize_outcome

bp = df.Blueprint()
BUSY_MARGIN_SECONDS = 3600  # how long after its deadline a crashed run still keeps reconcile away


class ProvisioningFailed(Exception):
    """A business failure with the service's (or our) code and message; ends the run as `failed`."""

    def __init__(self, error: dict, problems: list | None = None) -> None:
        super().__init__(f"{error['code']}: {error['message']}")
        self.error = error
        self.problems = problems or []


class Run:
    """The run's progress, mirrored into the custom status on every change of phase or counts."""

    def __init__(self, context: df.DurableOrchestrationContext, request: dict) -> None:
        self.context = context
        self.request = request
        target = request["nodes"]["dedicated"] + request["nodes"]["spot"]
        self.counts = phases.progress(target=target, users_total=target * len(request["users"]))

    def phase(self, name: str, **counts: int) -> None:
        self.counts.update(counts)
        self.context.set_custom_status(custom_status(name, self.request["poolId"], dict(self.counts)))


def wait_and_grant(
    context: df.DurableOrchestrationContext, run: Run, options: dict
) -> Generator[Any, Any, tuple[list, dict | None, dict]]:
    """Poll with durable timers and backoff until the nodes settle, the deadline passes or it fails, granting
    the users on nodes as they become ready: each poll stages the nodes that became ready since the ones
    before (provisioning.grant_work). While the pool is still coming up, each staging is granted by a
    `grant_staged_batch` sub-orchestration that runs while polling goes on, so nodes never wait for the
    grants of nodes that were ready before them; the last staging is granted here, then every grant is
    awaited. Polls start one interval apart, at the first interval while any node is ready or on its way
    (provisioning.nodes.poll_interval), so a node that goes idle is seen within one interval. Returns the
    problem nodes, the allocation error when fewer nodes came, and what the grants did."""
    running: list = []  # the grant_staged_batch sub-orchestrations started while polling
    try:
        return (yield from _poll_and_grant(context, run, options, running))
    except (ProvisioningFailed, TransientExhausted):
        if running:  # the grants already started end before the run does (and before their work is cleared)
            try:
                yield context.task_all(running)
            except Exception:  # noqa: BLE001 - the run's own failure is the one to report
                pass
        raise


def _poll_and_grant(
    context: df.DurableOrchestrationContext, run: Run, options: dict, running: list
) -> Generator[Any, Any, tuple[list, dict | None, dict]]:
    request, users = run.request, run.request["users"]
    pool_id, request_id = request["poolId"], request["requestId"]
    deadline = context.current_utc_datetime + timedelta(seconds=options["deadlineSeconds"])
    # A poll Batch did not answer is tried again; past the deadline one last answer is still awaited a while.
    retry_deadline = deadline_after(context, options["deadlineSeconds"] * 2)
    interval = None
    while True:
        polled_at = context.current_utc_datetime
        deadline_passed = polled_at >= deadline
        snapshot = yield from call_batch(
            context,
            "poll_pool",
            {"poolId": pool_id, "listPending": deadline_passed,
             "stage": {"run": context.instance_id, "batch": len(running)}},
            retry_deadline,
        )  # fmt: skip
        counts = snapshot["counts"]
        run.phase(
            phases.WAITING_FOR_NODES,
            nodesIdle=counts["ready"],
            nodesFailed=counts["failed"] + counts["unavailable"],
        )
        decision = wait_decision(snapshot, deadline_passed=deadline_passed)
        if decision["action"] == "fail":
            raise ProvisioningFailed(
                {"code": decision["code"], "message": decision["message"]}, snapshot["problems"]
            )
        staged = snapshot.get("staged")
        order_base = len(running) * BATCH_ORDER  # earlier stagings keep the first turns at Batch
        if decision["action"] == "proceed":
            result = no_grants()
            if staged:
                run.phase(
                    phases.GRANTING_ACCESS,
                    nodesIdle=snapshot["usable"],
                    nodesFailed=len(snapshot["problems"]),
                )
                result = yield from grant_staged(context, pool_id, request_id, users, staged, "", order_base)
            for earlier in (yield context.task_all(running)) if running else []:
                result = add_grants(result, earlier)
            return snapshot["problems"], decision.get("allocationError"), result
        if staged:
            job = {"poolId": pool_id, "requestId": request_id, "users": users, "staged": staged,
                   "orderBase": order_base}  # fmt: skip
            running.append(
                context.call_sub_orchestrator(
                    "grant_staged_batch", job, f"{context.instance_id}:grant:{len(running)}"
                )
            )
        # Polls start one interval apart (the time a poll takes is not added to the wait for the next one).
        interval = poll_interval(interval, counts, options["pollFirstSeconds"], options["pollMaxSeconds"])
        due = min(polled_at + timedelta(seconds=interval), deadline)
        now = context.current_utc_datetime
        if due <= now and not staged:
            continue  # the poll took the whole interval: poll again now
        # A grant this poll started is scheduled only once it is yielded: when the poll took the whole
        # interval, a timer due now starts it with the next poll (not when the run awaits every grant).
        timer = context.create_timer(max(due, now))
        granting = [task for task in running if not task.is_completed]
        if not granting:
            yield timer
        elif (yield context.task_any([*granting, timer])) is not timer:
            timer.cancel()  # a grant finished first: poll now, more nodes may be ready by now


def pool_event(output: dict, instance_id: str, at: str) -> dict:
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


def provision_pool(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    started = context.get_input()
    request, options = started["request"], started["options"]
    pool_id, users = request["poolId"], request["users"]
    run = Run(context, request)
    retry_deadline = deadline_after(context, options["deadlineSeconds"])
    image, problems, error, written, pool_is_ours = None, [], None, 0, False
    allocation_error, granted = None, {}
    try:
        run.phase(phases.SELECTING_IMAGE)
        chosen = yield from call_batch(
            context, "select_pool_image", {"poolId": pool_id, "image": request["image"]}, retry_deadline
        )
        if not chosen["ok"]:
            raise ProvisioningFailed(chosen["error"])
        image = chosen["image"]

        run.phase(phases.CREATING_POOL)
        created = yield from call_batch(
            context, "create_pool", {"request": request, "image": image}, retry_deadline
        )
        if not created["ok"]:
            raise ProvisioningFailed(created["error"])
        pool_is_ours = True
        yield context.call_activity_with_retry(
            "register_managed_pool",
            ACTIVITY_RETRY,
            {"poolId": pool_id, "createdByApp": True, "requestId": request["requestId"], "users": users,
             "deleteAfter": request.get("deleteAfter"), "at": format_timestamp(context.current_utc_datetime),
             "busyUntil": format_timestamp(context.current_utc_datetime + timedelta(
                 seconds=options["deadlineSeconds"] + BUSY_MARGIN_SECONDS))},
        )  # fmt: skip

        problems, allocation_error, result = yield from wait_and_grant(context, run, options)
        granted, written = result["granted"], result["written"]
        problems = problems + result["problems"]
        run.phase(phases.RECORDING_CONNECTIONS, usersGranted=granted["granted"])
    except ProvisioningFailed as failure:
        error, problems = failure.error, failure.problems or problems
    except TransientExhausted as exhausted:  # Batch stayed unavailable until the deadline
        error = exhausted.error
    except Exception as exc:  # noqa: BLE001 - an activity failed after its retries: report it, do not lose the event
        error = {
            "code": "ActivityFailed",
            "message": str(exc).splitlines()[0][:500] if str(exc) else repr(exc),
        }

    output = summarize_outcome(
        request=request,
        granted=granted,
        problems=problems,
        records_written=written,
        image=image,
        error=error,
        status_url=options["statusUrl"],
        allocation_error=allocation_error,
    )
    if output["outcome"] == phases.FAILED and options["deletePoolOnFailure"] and pool_is_ours:
        deleted = yield from call_batch(
            context, "delete_pool", {"poolId": pool_id}, deadline_after(context, None)
        )
        output["poolDeleted"] = deleted["deleted"]

    connections = []
    if pool_is_ours:
        connections = yield from finish_grant_work(
            context, pool_id, request["requestId"], output["progress"]["usersGranted"]
        )
    run.phase(phases.PUBLISHING, **{k: v for k, v in output["progress"].items() if k in run.counts})
    at = format_timestamp(context.current_utc_datetime)
    body = with_connections(
        pool_event(output, context.instance_id, at), connections, output["progress"]["usersGranted"]
    )
    yield context.call_activity_with_retry("publish_event", ACTIVITY_RETRY, body)
    if pool_is_ours:  # done with the pool: reconcile may look after it from now on
        yield context.call_activity_with_retry(
            "set_managed_pool_state", ACTIVITY_RETRY, {"poolId": pool_id, "busyUntil": at}
        )
    run.phase(output["outcome"])
    return output


bp.orchestration_trigger(context_name="context")(provision_pool)
