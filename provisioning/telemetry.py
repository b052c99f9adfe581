"""Structured log lines an operator can query: every outcome that needs attention is logged at warning or
error level with its code, and carries poolId / requestId / instanceId as fields.

The fields go twice into each record: as `key=value` at the end of the message (readable anywhere, and
parseable in the host's own log stream) and as `extra` attributes, which the OpenTelemetry log handler of
the Azure Monitor distro exports as custom dimensions (Application Insights `traces.customDimensions`,
Log Analytics `AppTraces.Properties`). No secret is ever a field: callers pass ids, counts and codes only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

# Values of the `event` field, one per kind of line (the names operators filter on).
REQUEST_RECEIVED = "request-received"
REQUEST_REJECTED = "request-rejected"
POOL_OUTCOME = "pool-outcome"
USER_DELETION = "user-deletion"
REVOKE_FAILED = "revoke-failed"

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _text(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if not text or any(c.isspace() for c in text) else text


def log_event(logger: logging.Logger, level: int, event: str, message: str, **fields: Any) -> None:
    """Log `message` with `event` and `fields` (None values dropped) as `key=value` text and as attributes."""
    present = {k: v for k, v in fields.items() if v is not None}
    clashes = _RESERVED.intersection(present) | ({"event"} & set(present))
    if clashes:
        raise ValueError(f"field names clash with log record attributes: {sorted(clashes)}")
    suffix = " ".join(f"{key}={_text(value)}" for key, value in present.items())
    logger.log(level, "%s %s", message, f"event={event} {suffix}".strip(), extra={"event": event, **present})


def log_request_verdict(logger: logging.Logger, verdict: Any, *, source: str) -> None:
    """A received request: accepted or duplicate at info; rejected (400, code RequestRejected, with the
    failing fields) or conflicting (409, code RequestIdConflict) at warning."""
    common = {
        "source": source,
        "outcome": verdict.kind,
        "poolId": verdict.pool_id,
        "requestId": verdict.request_id,
        "instanceId": verdict.instance_id,
    }
    if verdict.kind == "rejected":
        fields = sorted({e.get("field") or "" for e in verdict.errors or []})
        log_event(
            logger,
            logging.WARNING,
            REQUEST_REJECTED,
            "request rejected",
            code="RequestRejected",
            fields=",".join(f or "(body)" for f in fields),
            **common,
        )
    elif verdict.kind == "conflict":
        log_event(
            logger,
            logging.WARNING,
            REQUEST_REJECTED,
            "request rejected: requestId already used by a different request",
            code="RequestIdConflict",
            **common,
        )
    else:
        log_event(logger, logging.INFO, REQUEST_RECEIVED, f"request {verdict.kind}", **common)


def log_pool_outcome(logger: logging.Logger, event: Mapping[str, Any]) -> None:
    """The end of a provisioning run, from its `pool-ready` / `pool-failed` event: failed at error level
    with the error code, partial at warning (code PartialProvisioning), completed at info."""
    outcome = event.get("outcome")
    if outcome not in ("completed", "partial", "failed"):
        published = f"published {event.get('type')}"
        log_event(logger, logging.INFO, POOL_OUTCOME, published, poolId=event.get("poolId"))
        return
    error = event.get("error") or {}
    counts = event.get("counts") or {}
    if outcome == "failed":
        level, code = logging.ERROR, error.get("code") or "ProvisioningFailed"
    elif outcome == "partial":
        level, code = logging.WARNING, "PartialProvisioning"
    else:
        level, code = logging.INFO, None
    log_event(
        logger,
        level,
        POOL_OUTCOME,
        f"pool provisioning {outcome}" + (f": {error['message']}" if error.get("message") else ""),
        outcome=outcome,
        code=code,
        poolId=event.get("poolId"),
        requestId=event.get("requestId"),
        instanceId=event.get("instanceId"),
        nodesIdle=counts.get("nodesIdle"),
        nodesTotal=counts.get("nodesTotal"),
        nodesFailed=counts.get("nodesFailed"),
        usersGranted=counts.get("usersGranted"),
        usersTotal=counts.get("usersTotal"),
    )


def log_user_deletions(
    logger: logging.Logger, pool_id: str, node_id: str, results: Mapping[str, Mapping[str, Any]]
) -> None:
    """Users taken off one node (revoke or expiry): each failed deletion at error level with the service's
    code (the access is still there), the rest in one info line."""
    for user, result in sorted(results.items()):
        if not result.get("ok"):
            error = result.get("error") or {}
            log_event(
                logger,
                logging.ERROR,
                USER_DELETION,
                "could not delete a node user; access remains until retried",
                outcome="failed",
                code=error.get("code") or "UserDeletionFailed",
                poolId=pool_id,
                nodeId=node_id,
                user=user,
            )
    removed = sum(1 for r in results.values() if r.get("ok"))
    log_event(
        logger,
        logging.INFO,
        USER_DELETION,
        f"removed {removed} of {len(results)} users",
        poolId=pool_id,
        nodeId=node_id,
    )


def log_revoke_failed(
    logger: logging.Logger, pool_id: str, user: str, instance_id: str, status: Mapping[str, Any] | None
) -> None:
    """A revocation whose orchestration ended Failed or Terminated (the user may still be on some nodes)."""
    runtime_status = (status or {}).get("runtimeStatus")
    log_event(
        logger,
        logging.ERROR,
        REVOKE_FAILED,
        "revocation failed",
        code=f"Revoke{runtime_status}" if runtime_status else "RevokeFailed",
        poolId=pool_id,
        user=user,
        instanceId=instance_id,
    )
