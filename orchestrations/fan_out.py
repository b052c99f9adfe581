"""Fan-out in chunks: one activity per item, at most 100 items a sub-orchestration, errors kept per item, and
the parts an activity reports as transient (`retry`) run again after a durable-timer backoff (honouring
Retry-After) for as long as the run's deadline allows."""

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


def _run_all(
    context: df.DurableOrchestrationContext, activity: str, inputs: list[dict]
) -> Generator[Any, Any, list[dict]]:
    tasks = [context.call_activity_with_retry(activity, ACTIVITY_RETRY, item) for item in inputs]
    try:
        return list((yield context.task_all(tasks)))
    except Exception:  # noqa: BLE001 - task_all stops at the first failure: collect each task's own outcome
        results = []
        for item, task in zip(inputs, tasks, strict=True):
            try:
                results.append((yield task))
            except Exception as exc:  # noqa: BLE001
                error = {
                    "code": "ActivityFailed",
                    "message": str(exc).splitlines()[0][:300] if str(exc) else "",
                }
                results.append(
                    {"poolId": item.get("poolId"), "nodeId": item.get("nodeId"), "users": {}, "error": error}
                )
        return results


def merge_retry(first: dict, again: dict) -> dict:
    """The result of a retried part folded into the first result (per-user outcomes replaced)."""
    merged = {**first, "users": {**(first.get("users") or {}), **(again.get("users") or {})}}
    merged.pop("retry", None)
    if again.get("retry"):
        merged["retry"] = again["retry"]
    if again.get("error"):
        merged["error"] = again["error"]
    return merged


def _retry_after(results: list[dict]) -> float:
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


bp.orchestration_trigger(context_name="context")(run_activity_batch)
