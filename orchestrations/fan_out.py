"""Fan-out in chunks: one activity per item, at most 100 items a sub-orchestration, errors kept per item, and
the parts an activity reports as transient (`retry`) run again after a durable-timer backoff."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

bp = df.Blueprint()

CHUNK_SIZE = 100
# Failures the activity could not classify (an exception after the SDK's own retries) get two more attempts.
ACTIVITY_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)
# Parts an activity reported as transient (throttled, 5xx, dropped): run again up to this many times in all.
TRANSIENT_ATTEMPTS = 4
TRANSIENT_FIRST_DELAY_SECONDS = 2


def fan_out(
    context: df.DurableOrchestrationContext, activity: str, inputs: list[dict]
) -> Generator[Any, Any, list[dict]]:
    """Run `activity` once per input, in sub-orchestrations of at most CHUNK_SIZE; results in input order."""
    if not inputs:
        return []
    chunks = [inputs[start : start + CHUNK_SIZE] for start in range(0, len(inputs), CHUNK_SIZE)]
    batches = [
        context.call_sub_orchestrator(
            "run_activity_batch",
            {"activity": activity, "inputs": chunk},
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


def run_activity_batch(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[dict]]:
    """Sub-orchestration: the activities in parallel; one that fails for good becomes an error result; parts
    reported transient run again with doubling delays."""
    batch = context.get_input()
    results = yield from _run_all(context, batch["activity"], batch["inputs"])
    for attempt in range(1, TRANSIENT_ATTEMPTS):
        again = [(i, r["retry"]) for i, r in enumerate(results) if r.get("retry")]
        if not again:
            break
        delay = TRANSIENT_FIRST_DELAY_SECONDS * 2 ** (attempt - 1)
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=delay))
        retried = yield from _run_all(context, batch["activity"], [item for _, item in again])
        for (index, _), result in zip(again, retried, strict=True):
            results[index] = merge_retry(results[index], result)
    for result in results:
        result.pop("retry", None)
    return results


bp.orchestration_trigger(context_name="context")(run_activity_batch)
