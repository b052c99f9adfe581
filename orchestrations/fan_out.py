"""Fan-out in chunks: one activity per item, at most 100 items a sub-orchestration, errors kept per item."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

bp = df.Blueprint()

CHUNK_SIZE = 100
# Transient failures (the SDK already retried its HTTP calls) get two more attempts, 2 s apart.
ACTIVITY_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)


def fan_out(
    context: df.DurableOrchestrationContext, activity: str, inputs: list[dict[str, Any]]
) -> Generator[Any, Any, list[dict[str, Any]]]:
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


def run_activity_batch(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[dict[str, Any]]]:
    """Sub-orchestration: the activities in parallel; one that fails for good becomes an error result."""
    batch = context.get_input()
    tasks = [
        context.call_activity_with_retry(batch["activity"], ACTIVITY_RETRY, item) for item in batch["inputs"]
    ]
    try:
        return (yield context.task_all(tasks))
    except Exception:  # noqa: BLE001 - task_all stops at the first failure: collect each task's own outcome
        results = []
        for item, task in zip(batch["inputs"], tasks, strict=True):
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


bp.orchestration_trigger(context_name="context")(run_activity_batch)
