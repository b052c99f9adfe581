"""What became of one received request (accepted, duplicate, conflict, rejected), naming a request that may be
invalid, and the `request-rejected` event."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from provisioning.bounded_json import JsonRejected, loads_bounded
from provisioning.identity import default_request_id
from provisioning.request import ValidatedRequest

ACCEPTED, DUPLICATE, CONFLICT, REJECTED = "accepted", "duplicate", "conflict", "rejected"
_POOL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


@dataclass
class Verdict:
    """What became of one received request."""

    kind: str  # accepted | duplicate | conflict | rejected
    pool_id: str | None
    request_id: str | None
    instance_id: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "result": self.kind,
            "poolId": self.pool_id,
            "requestId": self.request_id,
            "instanceId": self.instance_id,
        }
        if self.errors:
            body["errors"] = self.errors
        if self.warnings:
            body["warnings"] = self.warnings
        return body


def identify(body: bytes | str | dict[str, Any], message_id: str | None = None) -> tuple[str | None, str]:
    """Best-effort (pool id, request id) of a request that may be invalid, for its rejection entry."""
    data: Any = body
    if not isinstance(body, dict):
        try:
            data = loads_bounded(body)
        except JsonRejected:
            data = None
    data = data if isinstance(data, dict) else {}
    pool_id = (
        data.get("poolId") if isinstance(data.get("poolId"), str) and _POOL_ID.match(data["poolId"]) else None
    )
    request_id = data.get("requestId")
    if not (isinstance(request_id, str) and _REQUEST_ID.match(request_id)):
        request_id = default_request_id(pool_id) if pool_id and "requestId" not in data else None
    return pool_id, request_id or f"message-{message_id or 'unknown'}"


def started_fingerprint(status: dict[str, Any]) -> str | None:
    """The request fingerprint a running or finished instance was started with."""
    started = status.get("input")
    if isinstance(started, str):
        try:
            started = json.loads(started)
        except json.JSONDecodeError:
            return None
    if not isinstance(started, dict):
        return None
    return (started.get("request") or {}).get("fingerprint")


def verdict_for_existing(request: ValidatedRequest, status: dict[str, Any], instance_id: str) -> Verdict:
    """A request whose instance exists already: a duplicate (same request: start nothing) or a conflict."""
    if started_fingerprint(status) in (None, request.body["fingerprint"]):
        return Verdict(DUPLICATE, request.pool_id, request.request_id, instance_id)
    error = {
        "field": "requestId",
        "rule": "is already used by a different request (choose a new requestId)",
        "message": "requestId: is already used by a different request (choose a new requestId)",
    }
    return Verdict(CONFLICT, request.pool_id, request.request_id, instance_id, errors=[error])


def rejection_event(verdict: Verdict, message_id: str | None, at: str) -> dict[str, Any]:
    """The `request-rejected` event a sender can watch for."""
    return {
        "type": "request-rejected",
        "eventId": f"request-rejected:{message_id or verdict.request_id}",
        "poolId": verdict.pool_id,
        "requestId": verdict.request_id,
        "messageId": message_id,
        "reason": verdict.kind,
        "errors": verdict.errors,
        "occurredAt": at,
    }
