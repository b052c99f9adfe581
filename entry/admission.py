"""Admitting a validated (or rejected) request of any kind: a duplicate starts nothing, a reused requestId is
a conflict, a new request gets a status entry and its orchestration; a queue rejection is recorded and
announced (never retried, never poisoned)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from entry.durable import instance_status, start_once
from entry.verdict import ACCEPTED, CONFLICT, DUPLICATE, REJECTED, Verdict, identify, rejection_event
from entry.verdict import verdict_for_existing as existing_verdict
from provisioning import telemetry
from provisioning.durations import format_timestamp
from provisioning.passwords import PasswordCipher
from provisioning.request import ValidationResult
from provisioning.settings import Settings
from provisioning.storage import EventPublisher, RequestEntries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One kind of request: its name, its orchestrator and how its instance id follows from the request id."""

    name: str
    orchestrator: str
    instance_id: Any  # Callable[[str], str]


def status_url(base_url: str | None, pool_id: str) -> str:
    """Where anyone can ask about a pool (GET, function key needed); relative when the base URL is unknown."""
    return f"{(base_url or '').rstrip('/')}/api/pools/{pool_id}"


def run_options(settings: Settings, base_url: str | None, pool_id: str) -> dict[str, Any]:
    """The settings a run needs, frozen into its input at start (orchestrators never read the environment)."""
    return {
        "deadlineSeconds": settings.provision_deadline.total_seconds(),
        "pollFirstSeconds": settings.idle_poll_first.total_seconds(),
        "pollMaxSeconds": settings.idle_poll_max.total_seconds(),
        "deletePoolOnFailure": settings.delete_pool_on_failure,
        "statusUrl": status_url(base_url or settings.app_base_url, pool_id),
    }


async def admit(
    client: df.DurableOrchestrationClient,
    settings: Settings,
    kind: Kind,
    result: ValidationResult,
    *,
    body: Any,
    source: str,
    base_url: str | None,
    message_id: str | None = None,
) -> Verdict:
    """Decide what becomes of the request, start its orchestration when it is new, and record a rejection."""
    if not result.ok:
        pool_id, request_id = identify(body, message_id)
        verdict = Verdict(REJECTED, pool_id, request_id, errors=result.errors_json())
    else:
        verdict = await _start(client, settings, kind, result, source, base_url)
    telemetry.log_request_verdict(log, verdict, source=source)
    if source == "queue" and verdict.kind in (REJECTED, CONFLICT):
        await asyncio.to_thread(record_rejection, settings, verdict, message_id)
    return verdict


async def _start(
    client: df.DurableOrchestrationClient,
    settings: Settings,
    kind: Kind,
    result: ValidationResult,
    source: str,
    base_url: str | None,
) -> Verdict:
    request = result.request
    instance_id = kind.instance_id(request.request_id)
    existing = await instance_status(client, instance_id, show_input=True)
    if existing:
        return existing_verdict(request, existing, instance_id)
    warnings = [w.to_json() for w in request.warnings]
    cipher = PasswordCipher(settings.password_encryption_key) if settings.passwords_enabled else None
    started = {
        "request": request.orchestration_input(cipher),
        "options": run_options(settings, base_url, request.pool_id),
    }
    await asyncio.to_thread(
        RequestEntries(settings).put,
        pool_id=request.pool_id,
        request_id=request.request_id,
        state=ACCEPTED,
        source=source,
        instance_id=instance_id,
        warnings=warnings,
        fingerprint=request.body["fingerprint"],
        kind=kind.name,
    )
    if not await start_once(client, kind.orchestrator, instance_id, started):
        return Verdict(DUPLICATE, request.pool_id, request.request_id, instance_id)
    return Verdict(ACCEPTED, request.pool_id, request.request_id, instance_id, warnings=warnings)


def record_rejection(settings: Settings, verdict: Verdict, message_id: str | None) -> None:
    """A status entry with the reasons (unless it would hide an accepted request) and a `request-rejected`
    event."""
    if verdict.kind == REJECTED:
        RequestEntries(settings).put(
            pool_id=verdict.pool_id,
            request_id=verdict.request_id,
            state=REJECTED,
            source="queue",
            errors=verdict.errors,
        )
    EventPublisher(settings).publish(
        rejection_event(verdict, message_id, format_timestamp(datetime.now(UTC)))
    )
