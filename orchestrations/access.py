"""Taking access away: `revoke_user_access` (one user the app granted on one pool, now) and the singleton
`cleanup_expired_access` (every live record past its expiry). Both act only where the app has records."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.fan_out import ACTIVITY_RETRY, fan_out
from provisioning.access import deletion_jobs, expired_by_pool, failed_deletions, settled_keys, versioned
from provisioning.durations import format_timestamp
from provisioning.events import event
from provisioning.records import EXPIRED, REVOKED

bp = df.Blueprint()

CLEANUP_BATCH = 1000  # records per cleanup run; the next run takes the rest


REVOKE_PASSES = 3  # a grant of the same user still retrying can create it again after a pass deleted it


def revoke_user_access(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    """Mark the user's grant revoked, delete the user from the nodes where the app created it, then mark those
    records revoked. A record written again after its user was deleted (a chunk of a grant of that user that
    was already under way) is not marked: the next pass deletes the user again, up to REVOKE_PASSES passes."""
    job = context.get_input()
    pool_id, user = job["poolId"], job["user"]
    at = format_timestamp(context.current_utc_datetime)
    context.set_custom_status({"phase": "revoking", "poolId": pool_id, "user": user})
    # The grant first: a grant of this user still running stops creating it (it checks before each chunk),
    # and reconcile stops applying it.
    yield context.call_activity_with_retry(
        "set_grant_state", ACTIVITY_RETRY, {"poolId": pool_id, "user": user, "state": REVOKED, "at": at}
    )
    results: list[dict] = []
    failed: list[dict] = []
    revoked = 0
    for _ in range(REVOKE_PASSES):
        found = yield context.call_activity_with_retry(
            "find_user_records", ACTIVITY_RETRY, {"poolId": pool_id, "user": user}
        )
        if not found["records"]:
            break
        deleted = yield from fan_out(context, "delete_node_users", deletion_jobs(found["records"]))
        results += deleted
        failed = failed_deletions(deleted)
        keys = versioned(settled_keys(deleted), found["records"])
        marked = yield context.call_activity_with_retry(
            "mark_records", ACTIVITY_RETRY, {"keys": keys, "state": REVOKED, "at": at}
        )
        revoked += marked["marked"]
        if marked["marked"] == len(keys):
            break  # no record was written again meanwhile
    outcome = {
        "poolId": pool_id,
        "user": user,
        "nodes": len({r.get("nodeId") for r in results}),
        "deleted": _count(results, user, "deleted"),
        "alreadyGone": _count(results, user, "gone"),
        "failed": failed,
        "recordsRevoked": revoked,
    }
    event_body = event(
        "access-revoked", context.instance_id, at, pool_id, per_run=True,
        user=user, nodes=outcome["nodes"], recordsRevoked=outcome["recordsRevoked"], failed=len(failed),
    )  # fmt: skip
    yield context.call_activity_with_retry("publish_event", ACTIVITY_RETRY, event_body)
    context.set_custom_status(
        {"phase": "revoked" if not failed else "partially-revoked", "poolId": pool_id, "user": user}
    )
    return outcome


def _count(results: list, user: str, result: str) -> int:
    return sum(1 for r in results if (r.get("users") or {}).get(user, {}).get("result") == result)


def cleanup_expired_access(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict]:
    """Find records past their expiry, delete those users from their nodes, mark the records expired."""
    now = format_timestamp(context.current_utc_datetime)
    context.set_custom_status({"phase": "finding-expired"})
    found = yield context.call_activity_with_retry(
        "find_expired_records", ACTIVITY_RETRY, {"now": now, "limit": CLEANUP_BATCH}
    )
    records = found["records"]
    if not records:
        return {"found": 0, "expired": 0, "failed": []}
    context.set_custom_status({"phase": "deleting-users", "found": len(records)})
    results = yield from fan_out(context, "delete_node_users", deletion_jobs(records))
    settled = settled_keys(results)
    # only records unchanged since they were found: one written again meanwhile (its user created again by a
    # grant still retrying) stays live, and the next run deletes that user again
    marked = yield context.call_activity_with_retry(
        "mark_records", ACTIVITY_RETRY, {"keys": versioned(settled, records), "state": EXPIRED, "at": now}
    )
    for pool_id, users in expired_by_pool(records, settled).items():
        expired = event("access-expired", context.instance_id, now, pool_id, per_run=True, users=users)
        yield context.call_activity_with_retry("publish_event", ACTIVITY_RETRY, expired)
    outcome = {"found": len(records), "expired": marked["marked"], "failed": failed_deletions(results)}
    context.set_custom_status({"phase": "done", **{k: v for k, v in outcome.items() if k != "failed"}})
    return outcome


bp.orchestration_trigger(context_name="context")(revoke_user_access)
bp.orchestration_trigger(context_name="context")(cleanup_expired_access)
