"""Deleting a pool the app created: `delete_managed_pool` (asked for over HTTP, or its deleteAfter passed).
The pool's records become `deleted` and a `pool-deleted` event is published."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.fan_out import ACTIVITY_RETRY
from orchestrations.retrying import call_batch, deadline_after
from provisioning.durations import format_timestamp
from provisioning.events import event
from provisioning.pool_registry import DELETED, DELETING
from provisioning.records import DELETED as RECORD_DELETED

bp = df.Blueprint()


def delete_pool_steps(
    context: df.DurableOrchestrationContext, pool_id: str, reason: str
) -> Generator[Any, Any, dict]:
    """Mark the pool deleting, delete it in Batch, mark its records deleted, announce it."""
    at = format_timestamp(context.current_utc_datetime)
    yield context.call_activity_with_retry(
        "set_managed_pool_state", ACTIVITY_RETRY, {"poolId": pool_id, "state": DELETING, "at": at}
    )
    deleted = yield from call_batch(
        context, "delete_pool", {"poolId": pool_id}, deadline_after(context, None)
    )
    marked = yield context.call_activity_with_retry(
        "mark_pool_records", ACTIVITY_RETRY, {"poolId": pool_id, "state": RECORD_DELETED, "at": at}
    )
    yield context.call_activity_with_retry(
        "set_managed_pool_state", ACTIVITY_RETRY, {"poolId": pool_id, "state": DELETED, "at": at}
    )
    outcome = {
        "poolId": pool_id,
        "reason": reason,
        "deleted": deleted["deleted"],
        "alreadyGone": deleted["alreadyGone"],
        "recordsDeleted": marked["marked"],
    }
    body = event("pool-deleted", context.instance_id, at, pool_id, per_run=True, **{
        k: v for k, v in outcome.items() if k != "poolId"
    })  # fmt: skip
    yield context.call_activity_with_retry("publish_event", ACTIVITY_RETRY, body)
    return outcome


def delete_managed_pool(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    job = context.get_input()
    context.set_custom_status({"phase": "deleting", "poolId": job["poolId"]})
    outcome = yield from delete_pool_steps(context, job["poolId"], job.get("reason", "requested"))
    context.set_custom_status({"phase": "deleted", "poolId": job["poolId"]})
    return outcome


bp.orchestration_trigger(context_name="context")(delete_managed_pool)
