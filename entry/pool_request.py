"""Intake of a pool request (`POST /api/pools`, or a queue message without `kind` / with `create-pool`):
validate, identify, decide, start `provision_pool` or reject."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from entry.admission import Kind, admit
from entry.http import accepted, json_response, origin
from entry.verdict import CONFLICT, REJECTED, Verdict
from provisioning.identity import provision_instance_id
from provisioning.request import validate_request
from provisioning.settings import load_settings

log = logging.getLogger(__name__)
POOL_REQUEST = Kind("create-pool", "provision_pool", provision_instance_id)


async def receive_pool_request(
    client: df.DurableOrchestrationClient,
    body: Any,
    *,
    source: str,
    base_url: str | None,
    message_id: str | None = None,
) -> Verdict:
    settings = load_settings()
    result = validate_request(body, settings, datetime.now(UTC))
    verdict = await admit(
        client,
        settings,
        POOL_REQUEST,
        result,
        body=body,
        source=source,
        base_url=base_url,
        message_id=message_id,
    )
    log.info("%s pool request %s for pool %s: %s", source, verdict.request_id, verdict.pool_id, verdict.kind)
    return verdict


async def pool_request_over_http(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """400 with the errors, 409 for a reused requestId, else 202 with the status URLs."""
    base_url = origin(req.url)
    verdict = await receive_pool_request(client, req.get_body(), source="http", base_url=base_url)
    if verdict.kind == REJECTED:
        return json_response({"errors": verdict.errors}, 400)
    if verdict.kind == CONFLICT:
        return json_response(verdict.to_json(), 409)
    body = {**verdict.to_json(), "poolStatusUri": f"{base_url}/api/pools/{verdict.pool_id}"}
    return accepted(req, client, verdict.instance_id, body)
