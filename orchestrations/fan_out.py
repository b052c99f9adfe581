"""Fan-outs: `fan_out` runs one activity per item, at most 100 items a sub-orchestration; `grant_in_chunks`
runs `grant_node_users` once per chunk of nodes, at most GROUP_CHUNKS chunks a sub-orchestration, and folds
the chunks' counts and failures into one summary. Either way errors are kept per item, and the parts an
activity reports as transient (`retry`) run again after a durable-timer backoff (honouring Retry-After) for as
long as the run's deadline allows."""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations.retrying import DEFAULT_BUDGET_SECONDS, backoff_seconds
from provisioning.durations import format_timestamp, parse_timestamp

bp = df.Blueprint()

CHUNK_SIZE = 100
# Failures the activity could not classify (an exception after the SDK's own retries) get two more attempts.
ACTIVITY_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)


def fan_out(
    context: df.DurableOrchestrationContext,
    activity: str,
    inputs: list[dict],
    deadline: datetime | None = None,
) -> Generator[Any, Any, list[dict]]:
    """Run `activity` once per input, in sub-orchestrations of at most CHUNK_SIZE; results in input order.
    Transient parts are retried until `deadline` (default: DEFAULT_BUDGET_SECONDS from now)."""
    if not inputs:
        return []
    if deadline is None:
        deadline = context.current_utc_datetime + timedelta(seconds=DEFAULT_BUDGET_SECONDS)
    chunks = [inputs[start : start + CHUNK_SIZE] for start in range(0, len(inputs), CHUNK_SIZE)]
    batches = [
        context.call_sub_orchestrator(
            "run_activity_batch",
            {"activity": activity, "inputs": chunk, "deadline": format_timestamp(deadline)},
            f"{context.instance_id}:{activity}:{n}",
        )
        for n, chunk in enumerate(chunks)
    ]
    results = yield context.task_all(batches)
    return [item for batch in results for item in batch]


def _outcomes(
    context: df.DurableOrchestrationContext, activity: str, inputs: list[dict]
) -> Generator[Any, Any, list[Any]]:
    """`activity` once per input, all at once: each input's result, or the exception its activity failed
    with for good (after ACTIVITY_RETRY), so one failure never loses the others' results."""
    tasks = [context.call_activity_with_retry(activity, ACTIVITY_RETRY, item) for item in inputs]
    try:
        return list((yield context.task_all(tasks)))
    except Exception:  # noqa: BLE001 - task_all stops at the first failure: collect each task's own outcome
        outcomes: list[Any] = []
        for task in tasks:
            try:
                outcomes.append((yield task))
            except Exception as exc:  # noqa: BLE001
                outcomes.append(exc)
        return outcomes


def activity_failed(exc: Exception) -> dict:
    """The error of an activity that failed for good: its first line, never a traceback."""
    return {"code": "ActivityFailed", "message": str(exc).splitlines()[0][:300] if str(exc) else ""}


def _run_all(
    context: df.DurableOrchestrationContext, activity: str, inputs: list[dict]
) -> Generator[Any, Any, list[dict]]:
    """Per-node activities: one that failed for good becomes that node's error result."""
    outcomes = yield from _outcomes(context, activity, inputs)
    return [
        {
            "poolId": item.get("poolId"),
            "nodeId": item.get("nodeId"),
            "users": {},
            "error": activity_failed(out),
        }
        if isinstance(out, Exception)
        else out
        for item, out in zip(inputs, outcomes, strict=True)
    ]


def merge_retry(first: dict, again: dict) -> dict:
    """The result of a retried part folded into the first result (per-user outcomes replaced)."""
    merged = {**first, "users": {**(first.get("users") or {}), **(again.get("users") or {})}}
    merged.pop("retry", None)
    if again.get("retry"):
        merged["retry"] = again["retry"]
    if again.get("error"):
        merged["error"] = again["error"]
    return merged


def _retry_after(results: list) -> float:
    """The longest Retry-After the service asked for in these results' transient errors."""
    return max(
        [
            float((outcome.get("error") or {}).get("retryAfter") or 0)
            for result in results
            for outcome in (result.get("users") or {}).values()
            if outcome.get("transient")
        ],
        default=0.0,
    )


def run_activity_batch(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[dict]]:
    """Sub-orchestration: the activities in parallel; one that fails for good becomes an error result; parts
    reported transient run again with doubling delays."""
    batch = context.get_input()
    deadline = (
        parse_timestamp(batch["deadline"])
        if batch.get("deadline")
        else context.current_utc_datetime + timedelta(seconds=DEFAULT_BUDGET_SECONDS)
    )
    results = yield from _run_all(context, batch["activity"], batch["inputs"])
    attempt = 0
    while True:
        again = [(i, r["retry"]) for i, r in enumerate(results) if r.get("retry")]
        if not again:
            break
        attempt += 1
        fire_at = context.current_utc_datetime + timedelta(
            seconds=backoff_seconds(attempt, _retry_after([results[i] for i, _ in again]))
        )
        if fire_at > deadline:
            break  # the deadline has come: the parts still transient are reported with their error
        yield context.create_timer(fire_at)
        retried = yield from _run_all(context, batch["activity"], [item for _, item in again])
        for (index, _), result in zip(again, retried, strict=True):
            results[index] = merge_retry(results[index], result)
    for result in results:
        result.pop("retry", None)
    return results


GRANT_ACTIVITY = "grant_node_users"
GROUP_CHUNKS = 10  # chunks per sub-orchestration: keeps every history small whatever the pool size


def empty_summary() -> dict:
    """What `grant_in_chunks` returns: counts, the failed (node, user) pairs and nodes without an SSH endpoint
    (no per-node detail of what went well: that is in the records)."""
    return {"nodes": 0, "pairs": 0, "granted": 0, "written": 0, "actions": {}, "failed": [], "noEndpoint": []}


def fold(summary: dict, part: dict) -> dict:
    """`part` (a chunk's result or another summary) added to `summary`."""
    for key in ("nodes", "pairs", "granted", "written"):
        summary[key] += part.get(key, 0)
    for action, count in (part.get("actions") or {}).items():
        summary["actions"][action] = summary["actions"].get(action, 0) + count
    summary["failed"] += part.get("failed") or []
    summary["noEndpoint"] += part.get("noEndpoint") or []
    return summary


def grant_in_chunks(
    context: df.DurableOrchestrationContext,
    inputs: list[dict],
    tag: str = "",
    deadline: datetime | None = None,
) -> Generator[Any, Any, dict]:
    """`grant_node_users` once per input (a chunk of nodes), all chunks at once (the activity bounds the Batch
    calls in flight); a sub-orchestration per GROUP_CHUNKS chunks when there are more (`tag` keeps their ids
    apart when one orchestration grants several times). Transient parts are retried until `deadline`
    (default: DEFAULT_BUDGET_SECONDS from now). Returns the summary."""
    summary = empty_summary()
    if not inputs:
        return summary
    if deadline is None:
        deadline = context.current_utc_datetime + timedelta(seconds=DEFAULT_BUDGET_SECONDS)
    groups = [inputs[start : start + GROUP_CHUNKS] for start in range(0, len(inputs), GROUP_CHUNKS)]
    if len(groups) == 1:
        parts = [(yield from _grant_group(context, groups[0], deadline))]
    else:
        parts = yield context.task_all([
            context.call_sub_orchestrator(
                "grant_node_chunks",
                {"chunks": group, "deadline": format_timestamp(deadline)},
                f"{context.instance_id}:{GRANT_ACTIVITY}:{tag}{n}",
            )
            for n, group in enumerate(groups)
        ])  # fmt: skip
    for part in parts:
        fold(summary, part)
    return summary


def _chunk_failure(
    context: df.DurableOrchestrationContext, item: dict, exc: Exception
) -> Generator[Any, Any, dict]:
    """A chunk whose activity failed for good: every (node, user) of it failed with ActivityFailed (pending
    records written before the failure stay, so whatever the activity created is still known)."""
    nodes = yield from _chunk_nodes(context, item)
    error = activity_failed(exc)
    failed = [{"nodeId": n["nodeId"], "user": name, "error": error} for n in nodes for name in n["users"]]
    return {"nodes": len(nodes), "pairs": len(failed), "failed": failed}


def _chunk_nodes(context: df.DurableOrchestrationContext, item: dict) -> Generator[Any, Any, list[dict]]:
    """The nodes of a chunk (`{"nodeId", "users"}`): in its input, or read from its staged work, which is
    what a chunk that failed for good needs to name them (if even that fails, the chunk names itself)."""
    if item.get("nodes"):
        return item["nodes"]
    names = [u["name"] for u in item["users"]]
    try:
        staged = yield context.call_activity_with_retry(
            "read_grant_work", ACTIVITY_RETRY, {"poolId": item["poolId"], "work": item["work"]}
        )
    except Exception:  # noqa: BLE001 - storage failed too: the failure still counts, under the chunk's key
        return [{"nodeId": item["work"], "users": names}]
    return [{"nodeId": node_id, "users": names} for node_id in staged["nodeIds"]]


def _grant_group(
    context: df.DurableOrchestrationContext, inputs: list[dict], deadline: datetime
) -> Generator[Any, Any, dict]:
    """The chunks granted in parallel; the (node, user) pairs a chunk reports transient run again after a
    backoff that honours Retry-After, until the deadline, when the ones still transient count as failed."""
    summary = empty_summary()
    pending, attempt = inputs, 0
    while pending:
        results = []
        for item, out in zip(pending, (yield from _outcomes(context, GRANT_ACTIVITY, pending)), strict=True):
            results.append(
                (yield from _chunk_failure(context, item, out)) if isinstance(out, Exception) else out
            )
        attempt += 1
        retry_after = max(
            [
                float((pair.get("error") or {}).get("retryAfter") or 0)
                for result in results
                for pair in result.get("transient") or []
            ],
            default=0.0,
        )
        fire_at = context.current_utc_datetime + timedelta(seconds=backoff_seconds(attempt, retry_after))
        in_time = fire_at <= deadline
        again = []
        for result in results:
            if attempt > 1:  # nodes and pairs were counted by the first attempt
                result = {**result, "nodes": 0, "pairs": 0}
            fold(summary, result)
            if result.get("retry") and in_time:
                again.append(result["retry"])
            else:
                summary["failed"] += result.get("transient") or []
        if again:
            yield context.create_timer(fire_at)
        pending = again
    return summary


def grant_node_chunks(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    """Sub-orchestration: a group of chunks granted in parallel, transient parts again after a backoff."""
    group = context.get_input()
    return (yield from _grant_group(context, group["chunks"], parse_timestamp(group["deadline"])))


bp.orchestration_trigger(context_name="context")(run_activity_batch)
bp.orchestration_trigger(context_name="context")(grant_node_chunks)
