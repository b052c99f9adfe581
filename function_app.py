"""The Function app: thin queue, HTTP and timer entry points, plus the orchestration and activity blueprints.

Entry points validate, start or query orchestrations, and answer; everything else lives in provisioning/,
orchestrations/ and activities/.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from activities import batch_pools, connection_records, events, node_users
from orchestrations import access, fan_out, provision
from provisioning import intake, telemetry
from provisioning.durations import format_timestamp
from provisioning.identity import CLEANUP_INSTANCE_ID, provision_instance_id, revoke_instance_id
from provisioning.progress import pool_view
from provisioning.records import SshConnectionRecord, render_ssh_config, render_table
from provisioning.request import validate_request
from provisioning.settings import Settings, load_settings
from provisioning.storage import ConnectionRecords, EventPublisher, RequestEntries

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (
    provision.bp,
    access.bp,
    fan_out.bp,
    batch_pools.bp,
    node_users.bp,
    connection_records.bp,
    events.bp,
):
    app.register_functions(blueprint)

log = logging.getLogger("function_app")
REQUEST_QUEUE = os.environ.get("REQUEST_QUEUE_NAME") or "pool-requests"
ACTIVE_STATES = ("Pending", "Running", "ContinuedAsNew", "Suspended")
REVOKE_WAIT_SECONDS = 20.0
_POOL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
FORMATS = {"json", "table", "ssh_config"}


# ---- queue: other systems ---------------------------------------------------------------------------------


@app.queue_trigger(arg_name="msg", queue_name=REQUEST_QUEUE, connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def pool_request_from_queue(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    """Start `provision_pool` for a valid request; record and announce a rejection (never retried)."""
    settings = load_settings()
    verdict = await submit(client, settings, msg.get_body(), source="queue", base_url=None, message_id=msg.id)
    telemetry.log_request_verdict(log, verdict, source="queue")
    if verdict.kind in (intake.REJECTED, intake.CONFLICT):
        await asyncio.to_thread(record_rejection, settings, verdict, msg.id)


# ---- HTTP: people and tools -------------------------------------------------------------------------------


@app.route(route="pools", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_pool(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """POST /api/pools: 400 with the errors, 409 for a reused requestId, else 202 with the status URLs."""
    settings = load_settings()
    base_url = origin(req.url)
    verdict = await submit(client, settings, req.get_body(), source="http", base_url=base_url)
    telemetry.log_request_verdict(log, verdict, source="http")
    if verdict.kind == intake.REJECTED:
        return json_response({"errors": verdict.errors}, 400)
    if verdict.kind == intake.CONFLICT:
        return json_response(verdict.to_json(), 409)
    check = client.create_check_status_response(req, verdict.instance_id)
    body = {
        **json.loads(check.get_body()),
        **verdict.to_json(),
        "poolStatusUri": f"{base_url}/api/pools/{verdict.pool_id}",
    }
    return func.HttpResponse(
        json.dumps(body), status_code=202, headers=dict(check.headers), mimetype="application/json"
    )


@app.route(route="pools/{poolId}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def get_pool(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/pools/{poolId}: phase, progress (nodes idle/total, users granted), outcome and records."""
    pool_id = req.route_params.get("poolId", "")
    if not _POOL_ID.match(pool_id):
        return json_response({"error": "poolId: must be 1-64 letters, digits, hyphens or underscores"}, 400)
    settings = load_settings()
    entry, records = await asyncio.gather(
        asyncio.to_thread(latest_entry, settings, pool_id),
        asyncio.to_thread(pool_records, settings, pool_id),
    )
    if entry is None and not records:
        return json_response({"error": f"no request is known for pool {pool_id}"}, 404)
    status = await instance_status(client, entry["instanceId"]) if entry and entry.get("instanceId") else None
    return json_response(pool_view(pool_id, entry, status, [r.to_json() for r in records]))


@app.route(route="pools/{poolId}/connections", methods=["GET"])
async def get_connections(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/pools/{poolId}/connections[?format=json|table|ssh_config]: the SSH connection records."""
    pool_id, kind = req.route_params.get("poolId", ""), (req.params.get("format") or "json").lower()
    if not _POOL_ID.match(pool_id):
        return json_response({"error": "poolId: must be 1-64 letters, digits, hyphens or underscores"}, 400)
    if kind not in FORMATS:
        return json_response({"error": "format: must be one of json, table, ssh_config"}, 400)
    records = await asyncio.to_thread(pool_records, load_settings(), pool_id)
    if kind == "table":
        return func.HttpResponse(render_table(records), mimetype="text/plain")
    if kind == "ssh_config":
        return func.HttpResponse(render_ssh_config(records), mimetype="text/plain")
    return json_response({"poolId": pool_id, "connections": [r.to_json() for r in records]})


@app.route(route="pools/{poolId}/users/{user}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def revoke_user(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """DELETE /api/pools/{poolId}/users/{user}: delete the user from every node now, mark the records revoked.
    200 with the result when it finishes within a few seconds, else 202 with the status URLs."""
    pool_id, user = req.route_params.get("poolId", ""), req.route_params.get("user", "")
    if not _POOL_ID.match(pool_id):
        return json_response({"error": "poolId: must be 1-64 letters, digits, hyphens or underscores"}, 400)
    if not _USER.match(user):
        return json_response(
            {"error": "user: must be a Linux user name (lower-case letters, digits, _ or -)"}, 400
        )
    instance_id = revoke_instance_id(pool_id, user)
    status = await instance_status(client, instance_id)
    if not status or status["runtimeStatus"] not in ACTIVE_STATES:
        await start_once(client, "revoke_user_access", instance_id, {"poolId": pool_id, "user": user})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REVOKE_WAIT_SECONDS
    while loop.time() < deadline:
        status = await instance_status(client, instance_id)
        if status and status["runtimeStatus"] == "Completed":
            return json_response({"revoked": status["output"]})
        if status and status["runtimeStatus"] in ("Failed", "Terminated"):
            telemetry.log_revoke_failed(log, pool_id, user, instance_id, status)
            return json_response({"error": "the revocation failed", "detail": status.get("output")}, 500)
        await asyncio.sleep(0.25)
    return client.create_check_status_response(req, instance_id)


# ---- timer: expiry --------------------------------------------------------------------------------------


@app.timer_trigger(arg_name="timer", schedule="%CLEANUP_SCHEDULE%", run_on_startup=False)
@app.durable_client_input(client_name="client")
async def cleanup_expired_access_timer(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    """Start the singleton cleanup orchestration unless a run is still going."""
    status = await instance_status(client, CLEANUP_INSTANCE_ID)
    if status and status["runtimeStatus"] in ACTIVE_STATES:
        log.info("cleanup still running; this tick starts nothing")
        return
    await start_once(client, "cleanup_expired_access", CLEANUP_INSTANCE_ID, {})


# ---- helpers ----------------------------------------------------------------------------------------------


async def submit(
    client: df.DurableOrchestrationClient,
    settings: Settings,
    body: bytes,
    *,
    source: str,
    base_url: str | None,
    message_id: str | None = None,
) -> intake.Verdict:
    """Validate a request and start its orchestration unless it is a duplicate (same instance id)."""
    result = validate_request(body, settings, datetime.now(UTC))
    if not result.ok:
        pool_id, request_id = intake.identify(body, message_id)
        return intake.Verdict(intake.REJECTED, pool_id, request_id, errors=result.errors_json())
    request = result.request
    warnings = [w.to_json() for w in request.warnings]
    instance_id = provision_instance_id(request.request_id)
    existing = await instance_status(client, instance_id, show_input=True)
    if existing:
        return intake.verdict_for_existing(request, existing)
    started = intake.orchestration_input(request, settings, base_url)
    await asyncio.to_thread(
        put_entry,
        settings,
        pool_id=request.pool_id,
        request_id=request.request_id,
        state=intake.ACCEPTED,
        source=source,
        instance_id=instance_id,
        warnings=warnings,
        fingerprint=request.body["fingerprint"],
    )
    if not await start_once(client, "provision_pool", instance_id, started):
        return intake.Verdict(intake.DUPLICATE, request.pool_id, request.request_id, instance_id)
    return intake.Verdict(
        intake.ACCEPTED, request.pool_id, request.request_id, instance_id, warnings=warnings
    )


async def start_once(client: df.DurableOrchestrationClient, name: str, instance_id: str, data: Any) -> bool:
    """Start an instance; False when a concurrent start of the same id won the race."""
    try:
        await client.start_new(name, instance_id, data)
        return True
    except Exception:
        status = await instance_status(client, instance_id)
        if status and status["runtimeStatus"] in ACTIVE_STATES:
            return False
        raise


def record_rejection(settings: Settings, verdict: intake.Verdict, message_id: str) -> None:
    """A status entry with the reasons (unless it would hide an accepted request) and a `request-rejected`
    event."""
    if verdict.kind == intake.REJECTED:
        RequestEntries(settings).put(
            pool_id=verdict.pool_id,
            request_id=verdict.request_id,
            state=intake.REJECTED,
            source="queue",
            errors=verdict.errors,
        )
    EventPublisher(settings).publish(
        intake.rejection_event(verdict, message_id, format_timestamp(datetime.now(UTC)))
    )


def latest_entry(settings: Settings, pool_id: str) -> dict[str, Any] | None:
    return RequestEntries(settings).latest_for_pool(pool_id)


def pool_records(settings: Settings, pool_id: str) -> list[SshConnectionRecord]:
    return ConnectionRecords(settings).for_pool(pool_id)


def put_entry(settings: Settings, **entry: Any) -> None:
    RequestEntries(settings).put(**entry)


async def instance_status(
    client: df.DurableOrchestrationClient, instance_id: str, *, show_input: bool = False
) -> dict[str, Any] | None:
    """The orchestration status as plain JSON, or None when no such instance exists."""
    status = await client.get_status(instance_id, show_input=show_input)
    if not status or status.runtime_status is None:
        return None
    return {
        "runtimeStatus": status.runtime_status.value,
        "customStatus": status.custom_status,
        "output": status.output,
        "input": status.input_ if show_input else None,
        "createdTime": status.created_time.isoformat() if status.created_time else None,
        "lastUpdatedTime": status.last_updated_time.isoformat() if status.last_updated_time else None,
    }


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")
