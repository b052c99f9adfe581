"""Taking access away: `revoke_user_access` (one user, one pool, now) and the singleton
`cleanup_expired_access` (every record past its expiry)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.fan_out import ACTIVITY_RETRY, fan_out
from provisioning.access import deletion_jobs, failed_deletions, settled_keys
from provisioning.durations import format_timestamp
from provisioning.records import EXPIRED, REVOKED

bp = df.Blueprint()

CLEANUP_BATCH = 1000  # records per cleanup run; the next run takes the rest


def revoke_user_access(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Delete the user from every node of the pool, then mark the user's records revoked."""
    job = context.get_input()
    pool_id, user = job["poolId"], job["user"]
    context.set_custom_status({"phase": "revoking", "poolId": pool_id, "user": user})
    listing = yield context.call_activity_with_retry(
        "list_pool_node_ids", ACTIVITY_RETRY, {"poolId": pool_id}
    )
    results = yield from fan_out(
        context,
        "delete_node_users",
        [{"poolId": pool_id, "nodeId": n, "users": [user]} for n in listing["nodeIds"]],
    )
    failed = failed_deletions(results)
    marked = yield context.call_activity_with_retry(
        "mark_user_records",
        ACTIVITY_RETRY,
        {
            "poolId": pool_id,
            "user": user,
            "state": REVOKED,
            "at": format_timestamp(context.current_utc_datetime),
            "exceptNodeIds": sorted({f["nodeId"] for f in failed}),
        },
    )
    outcome = {
        "poolId": pool_id,
        "user": user,
        "poolExists": listing["exists"],
        "nodes": len(listing["nodeIds"]),
        "deleted": sum(1 for r in results if (r.get("users") or {}).get(user, {}).get("result") == "deleted"),
        "alreadyGone": sum(
            1 for r in results if (r.get("users") or {}).get(user, {}).get("result") == "gone"
        ),
        "failed": failed,
        "recordsRevoked": marked["marked"],
    }
    context.set_custom_status(
        {"phase": "revoked" if not failed else "partially-revoked", "poolId": pool_id, "user": user}
    )
    return outcome


def cleanup_expired_access(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
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
    marked = yield context.call_activity_with_retry(
        "mark_records", ACTIVITY_RETRY, {"keys": settled_keys(results), "state": EXPIRED, "at": now}
    )
    outcome = {"found": len(records), "expired": marked["marked"], "failed": failed_deletions(results)}
    context.set_custom_status({"phase": "done", **{k: v for k, v in outcome.items() if k != "failed"}})
    return outcome


bp.orchestration_trigger(context_name="context")(revoke_user_access)
bp.orchestration_trigger(context_name="context")(cleanup_expired_access)
