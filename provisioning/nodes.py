"""Node-state classification and the wait-for-idle decision, from the service's pool and node JSON."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class NodeCategory(StrEnum):
    READY = "ready"  # users can be added: idle or running
    PENDING = "pending"  # on its way; wait for it
    FAILED = "failed"  # will not become usable by itself: start task failed, unusable
    UNAVAILABLE = "unavailable"  # taken away or switched off: preempted, leaving, offline, deallocated


NODE_CATEGORIES: dict[str, NodeCategory] = {
    "idle": NodeCategory.READY,
    "running": NodeCategory.READY,
    "creating": NodeCategory.PENDING,
    "starting": NodeCategory.PENDING,
    "waitingforstarttask": NodeCategory.PENDING,
    "rebooting": NodeCategory.PENDING,
    "reimaging": NodeCategory.PENDING,
    "upgradingos": NodeCategory.PENDING,
    "unknown": NodeCategory.PENDING,
    "starttaskfailed": NodeCategory.FAILED,
    "unusable": NodeCategory.FAILED,
    "leavingpool": NodeCategory.UNAVAILABLE,
    "offline": NodeCategory.UNAVAILABLE,
    "preempted": NodeCategory.UNAVAILABLE,
    "deallocated": NodeCategory.UNAVAILABLE,
    "deallocating": NodeCategory.UNAVAILABLE,
}


def classify_node_state(state: str | None) -> NodeCategory:
    """The category of a Batch node state; a state this app does not know is treated as pending."""
    return NODE_CATEGORIES.get((state or "").lower(), NodeCategory.PENDING)


def node_problem(node: dict[str, Any]) -> dict[str, Any]:
    """Why a node is not usable, for the per-node report."""
    state = (node.get("state") or "unknown").lower()
    info = node.get("startTaskInfo") or {}
    failure = info.get("failureInfo") or {}
    if state == "starttaskfailed":
        reason = f"start task failed with exit code {info.get('exitCode')}"
        if failure.get("message"):
            reason += f": {failure['message']}"
    elif node.get("errors"):
        first = node["errors"][0]
        reason = f"{first.get('code', 'NodeError')}: {first.get('message', '')}".rstrip(": ")
    elif classify_node_state(state) is NodeCategory.PENDING:
        reason = f"still {state} when the provisioning deadline passed"
    else:
        reason = f"node is {state}"
    return {"nodeId": node.get("id"), "state": state, "reason": reason}


def summarize_pool(
    pool: dict[str, Any], nodes: list[dict[str, Any]], *, list_pending: bool = False
) -> dict[str, Any]:
    """A compact, JSON-able snapshot of a pool for the orchestration: counts, resize errors, problem nodes;
    never a list of every node, so polls stay small however big the pool. Nodes still on their way count as
    problems once the pool has settled or when asked (`list_pending`, the deadline has passed)."""
    counts = {c.value: 0 for c in NodeCategory}
    states: dict[str, int] = {}
    problems: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for node in nodes:
        state = (node.get("state") or "unknown").lower()
        states[state] = states.get(state, 0) + 1
        category = classify_node_state(state)
        counts[category.value] += 1
        if category is NodeCategory.PENDING:
            pending.append(node)
        elif category is not NodeCategory.READY:
            problems.append(node_problem(node))
    allocation = (pool.get("allocationState") or "").lower()
    settled = allocation == "steady" and counts[NodeCategory.PENDING.value] == 0
    return {
        "poolState": (pool.get("state") or "").lower(),
        "allocationState": allocation,
        "targetNodes": (pool.get("targetDedicatedNodes") or 0) + (pool.get("targetLowPriorityNodes") or 0),
        "resizeErrors": [
            {"code": e.get("code"), "message": e.get("message")} for e in (pool.get("resizeErrors") or [])
        ],
        "nodeCount": len(nodes),
        "counts": counts,
        "states": states,
        "settled": settled,
        "usable": counts[NodeCategory.READY.value],
        "problems": problems + ([node_problem(n) for n in pending] if settled or list_pending else []),
    }


def wait_decision(snapshot: dict[str, Any], *, deadline_passed: bool) -> dict[str, Any]:
    """`wait`, `proceed` (with the number of usable nodes) or `fail` (with code and message) after a poll."""
    if snapshot["poolState"] == "missing":
        return {"action": "fail", "code": "PoolNotFound", "message": "the pool no longer exists"}
    if snapshot["poolState"] == "deleting":
        return {"action": "fail", "code": "PoolBeingDeleted", "message": "the pool is being deleted"}
    allocation_error = None
    if snapshot["resizeErrors"]:
        first = snapshot["resizeErrors"][0]
        codes = ", ".join(e["code"] or "ResizeError" for e in snapshot["resizeErrors"])
        allocation_error = {
            "code": first["code"] or "ResizeError",
            "message": f"the pool could not be allocated ({codes}): {first['message']}",
        }
        if snapshot["nodeCount"] == 0:
            return {"action": "fail", **allocation_error}  # nothing was allocated: fail fast
    if snapshot["settled"] or deadline_passed:
        if snapshot["usable"]:
            decision = {"action": "proceed", "usable": snapshot["usable"]}
            if allocation_error:
                decision["allocationError"] = allocation_error  # go on with the nodes that were allocated
            return decision
        if allocation_error:
            return {"action": "fail", **allocation_error}
        if snapshot["settled"]:
            detail = "; ".join(f"{p['nodeId']}: {p['reason']}" for p in snapshot["problems"][:10])
            return {
                "action": "fail",
                "code": "NoUsableNodes",
                "message": "no node became usable" + (f" ({detail})" if detail else ""),
            }
        return {
            "action": "fail",
            "code": "ProvisionDeadlineExceeded",
            "message": "no node was idle before the provisioning deadline "
            f"(node states: {snapshot['states']})",
        }
    return {"action": "wait"}


def missing_pool_snapshot() -> dict[str, Any]:
    """The snapshot of a pool that is not there (deleted by someone else while we waited)."""
    snapshot = summarize_pool({"state": "missing"}, [])
    snapshot["settled"] = False
    return snapshot


def next_poll_interval(previous: float | None, first: float, maximum: float) -> float:
    """Exponential backoff in seconds: first, then doubling, never above maximum."""
    if previous is None:
        return first
    return min(previous * 2, maximum)


def poll_interval(previous: float | None, counts: dict[str, int], first: float, maximum: float) -> float:
    """Seconds from the start of one poll to the start of the next. The first interval while any node is
    ready or on its way to ready (`counts` of a snapshot): such a node can go idle at any moment, and it is
    seen within one interval, however long it took to boot. Backoff only while there is no such node (the pool
    is still allocating, or waits for capacity)."""
    if counts.get(NodeCategory.READY.value) or counts.get(NodeCategory.PENDING.value):
        return first
    return next_poll_interval(previous, first, maximum)
