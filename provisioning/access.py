"""Taking access away: per-node deletion jobs for (pool, node, user) pairs, and the records they settle."""

from __future__ import annotations

from typing import Any

from provisioning.records import partition_key, row_key


def deletion_jobs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One `delete_node_users` input per (pool, node), listing that node's users, in a stable order."""
    jobs: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        job = jobs.setdefault(
            (record["poolId"], record["nodeId"]),
            {"poolId": record["poolId"], "nodeId": record["nodeId"], "users": []},
        )
        if record["user"] not in job["users"]:
            job["users"].append(record["user"])
    return [jobs[key] for key in sorted(jobs)]


def settled_keys(results: list[dict[str, Any]]) -> list[list[str]]:
    """Keys [PartitionKey, RowKey] of the (node, user) pairs whose deletion succeeded or found them gone."""
    keys = []
    for result in results:
        for user, outcome in sorted((result.get("users") or {}).items()):
            if outcome.get("ok"):
                keys.append([partition_key(result["poolId"]), row_key(result["nodeId"], user)])
    return keys


def versioned(keys: list[list[str]], records: list[dict[str, Any]]) -> list[list[Any]]:
    """`keys` with the ETag each record was found at: the record is marked only if it is still that version
    (a grant that wrote it again after the deletion keeps it live for the next pass)."""
    etags = {(r["partitionKey"], r["rowKey"]): r.get("etag") for r in records}
    return [[pk, rk, etags[(pk, rk)]] if etags.get((pk, rk)) else [pk, rk] for pk, rk in keys]


def failed_deletions(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The (node, user) pairs whose deletion failed, with the service's error."""
    failed = []
    for result in results:
        if result.get("error"):
            failed.append(
                {"poolId": result.get("poolId"), "nodeId": result.get("nodeId"), "error": result["error"]}
            )
        for user, outcome in sorted((result.get("users") or {}).items()):
            if not outcome.get("ok"):
                failed.append(
                    {
                        "poolId": result["poolId"],
                        "nodeId": result["nodeId"],
                        "user": user,
                        "error": outcome.get("error"),
                    }
                )
    return failed


def expired_by_pool(records: list[dict[str, Any]], settled: list[list[str]]) -> dict[str, list[str]]:
    """Per pool id, the users whose expired records were settled (for one `access-expired` event a pool)."""
    done = {(pk, rk) for pk, rk in settled}
    pools: dict[str, set[str]] = {}
    for record in records:
        if (record["partitionKey"], record["rowKey"]) in done:
            pools.setdefault(record["poolId"], set()).add(record["user"])
    return {pool: sorted(users) for pool, users in sorted(pools.items())}
