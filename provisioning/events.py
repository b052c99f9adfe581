"""The events the app publishes for other systems (plain JSON, never a secret): what happened to a pool or to
people's access. Consumers dedupe on `eventId`."""

from __future__ import annotations

from typing import Any

MAX_CONNECTIONS_IN_EVENT = 100  # a queue message holds 64 KB; the rest is at the status URL


def event(kind: str, instance_id: str, at: str, pool_id: str, **fields: Any) -> dict[str, Any]:
    """An event envelope: type, eventId (unique per instance and kind), poolId, occurredAt, then `fields`."""
    return {
        "type": kind,
        "eventId": f"{instance_id}:{kind}:{at}" if fields.pop("per_run", False) else f"{instance_id}:{kind}",
        "poolId": pool_id,
        "instanceId": instance_id,
        "occurredAt": at,
        **fields,
    }


def with_connections(
    body: dict[str, Any], connections: list[dict[str, Any]], total: int | None = None
) -> dict[str, Any]:
    """Add the connection details `{nodeId, user, ip, port}` (sorted by user and node), at most
    MAX_CONNECTIONS_IN_EVENT of the `total` granted (`connectionsTruncated` says when there are more)."""
    total = len(connections) if total is None else total
    body["connections"] = connections[:MAX_CONNECTIONS_IN_EVENT]
    body["connectionsTotal"] = total
    body["connectionsTruncated"] = total > len(body["connections"])
    return body
