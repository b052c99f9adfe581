"""The events the app publishes for other systems (plain JSON, never a secret): what happened to a pool or to
people's access. Consumers dedupe on `eventId`."""

from __future__ import annotations

from typing import Any

MAX_CONNECTIONS_IN_EVENT = 100  # a queue message holds 64 KB; the rest is at the status URL


def connection_details(grants: list[dict], endpoints: dict[str, dict]) -> list[dict[str, Any]]:
    """`{nodeId, user, ip, port}` of every granted (node, user), in a stable order."""
    details = []
    for grant in grants:
        endpoint = endpoints.get(grant["nodeId"]) or {}
        for name, outcome in sorted((grant.get("users") or {}).items()):
            if outcome.get("ok") and endpoint.get("ip"):
                details.append(
                    {"nodeId": grant["nodeId"], "user": name, "ip": endpoint["ip"], "port": endpoint["port"]}
                )
    return sorted(details, key=lambda d: (d["user"], d["nodeId"]))


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


def with_connections(body: dict[str, Any], connections: list[dict[str, Any]]) -> dict[str, Any]:
    """Add the connection details, at most MAX_CONNECTIONS_IN_EVENT (`connectionsTruncated` says so)."""
    body["connections"] = connections[:MAX_CONNECTIONS_IN_EVENT]
    body["connectionsTotal"] = len(connections)
    body["connectionsTruncated"] = len(connections) > MAX_CONNECTIONS_IN_EVENT
    return body
