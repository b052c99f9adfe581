"""Read views built from the app's tables (pure): a pool as it is across all requests for it, the list of
managed pools, one person's access across pools."""

from __future__ import annotations

from typing import Any

from provisioning.pool_registry import public_user
from provisioning.records import ACTIVE, LIVE_STATES, SshConnectionRecord


def node_summary(records: list[SshConnectionRecord]) -> list[dict[str, Any]]:
    """Per node with live records: its last known state, endpoint and the users active there."""
    nodes: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.state not in LIVE_STATES:
            continue
        node = nodes.setdefault(
            r.node_id,
            {"nodeId": r.node_id, "nodeState": r.node_state, "ip": r.ip, "port": r.port, "users": []},
        )
        if r.state == ACTIVE:
            node["users"].append(r.user)
    return [dict(n, users=sorted(n["users"])) for _, n in sorted(nodes.items())]


def managed_section(
    managed: dict[str, Any] | None, grants: list[dict[str, Any]], records: list[SshConnectionRecord]
) -> dict[str, Any]:
    """The pool as the app manages it, whatever the latest request did: who may log in until when, where."""
    active = [r for r in records if r.state == ACTIVE]
    return {
        "managed": managed is not None,
        "createdByApp": bool(managed and managed["createdByApp"]),
        "state": managed["state"] if managed else None,
        "deleteAfter": managed["deleteAfter"] if managed else None,
        "managedSince": managed["managedSince"] if managed else None,
        "nodeCounts": managed["nodeCounts"] if managed else None,
        "users": [
            {**public_user(g), "activeNodes": sum(1 for r in active if r.user == g["name"])} for g in grants
        ],
        "nodes": node_summary(records),
        "activeRecords": len(active),
    }


def pool_summary(managed: dict[str, Any], phase: str | None, grants: list[dict[str, Any]]) -> dict[str, Any]:
    """One line of GET /api/pools."""
    return {
        "poolId": managed["poolId"],
        "createdByApp": managed["createdByApp"],
        "state": managed["state"],
        "phase": phase,
        "nodeCounts": managed["nodeCounts"],
        "activeUsers": sorted(g["name"] for g in grants),
        "deleteAfter": managed["deleteAfter"],
        "latestRequestId": managed["latestRequestId"],
    }
