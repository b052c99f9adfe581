"""What reconcile must change on one pool, from the pool as Batch lists it, the app's live records and the
pool's active grants: users for usable nodes that lack them (except where a user of that name exists that the
app did not create), records of vanished nodes, node states."""

from __future__ import annotations

from typing import Any


def is_up_to_date(record: dict[str, Any] | None, grant: dict[str, Any]) -> bool:
    """The node has this grant as asked: an active record with the same expiry, key and admin flag."""
    return (
        record is not None
        and record["state"] == "active"
        and record["expiresAt"] == grant["expiryTime"]
        and (record.get("keyFingerprint") or "") == (grant.get("keyFingerprint") or "")
        and bool(record.get("isAdmin")) == bool(grant.get("admin"))
    )


def plan_pool(survey: dict[str, Any], records: list[dict[str, Any]], grants: list[dict[str, Any]]) -> dict:
    """`{"poolGone", "gone": [[pk, rk]], "nodeStates": {node: state}, "jobs": [{"nodeId", "users"}],
    "nodeCounts"}`. Nodes that are already right cost nothing: no job, no write."""
    if not survey["exists"]:
        return {"poolGone": True, "gone": [], "nodeStates": {}, "jobs": [], "nodeCounts": None}
    nodes = survey["nodes"]
    gone = [[r["partitionKey"], r["rowKey"]] for r in records if r["nodeId"] not in nodes]
    node_states = {
        r["nodeId"]: nodes[r["nodeId"]]["state"]
        for r in records
        if r["nodeId"] in nodes and nodes[r["nodeId"]]["state"] != r.get("nodeState")
    }
    live = {(r["nodeId"], r["user"]): r for r in records}
    usable = sorted(n for n, info in nodes.items() if info["category"] == "ready" and info.get("ip"))
    jobs = []
    for node_id in usable:
        names = [
            g["name"]
            for g in grants
            if node_id not in (g.get("foreignNodes") or ())
            and not is_up_to_date(live.get((node_id, g["name"])), g)
        ]
        if names:
            jobs.append({"nodeId": node_id, "users": names})
    counts = {"total": len(nodes), "usable": len(usable)}
    return {"poolGone": False, "gone": gone, "nodeStates": node_states, "jobs": jobs, "nodeCounts": counts}
