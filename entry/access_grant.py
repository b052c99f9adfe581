"""Intake of an access grant (`POST /api/pools/{poolId}/access`, or a queue message with `kind:
grant-access`): validate, identify, decide, start `grant_pool_access` or reject. Over HTTP the answer waits
for the pool check, so a pool that is not there is a 404 and one without SSH a 409."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from entry.admission import Kind, admit
from entry.durable import wait_for
from entry.http import BAD_POOL_ID, POOL_ID, accepted, json_response, origin
from entry.verdict import CONFLICT, REJECTED, Verdict
from provisioning.grant_request import validate_access_grant
from provisioning.identity import grant_instance_id
from provisioning.progress import ACCEPTED, CHECKING_POOL
from provisioning.settings import load_settings

log = logging.getLogger(__name__)
ACCESS_GRANT = Kind("grant-access", "grant_pool_access", grant_instance_id)
POOL_CHECK_WAIT_SECONDS = 20.0


async def receive_access_grant(
    client: df.DurableOrchestrationClient,
    body: Any,
    *,
    pool_id: str | None,
    source: str,
    base_url: str | None,
    message_id: str | None = None,
) -> Verdict:
    settings = load_settings()
    result = validate_access_grant(body, settings, datetime.now(UTC), pool_id=pool_id)
    verdict = await admit(
        client,
        settings,
        ACCESS_GRANT,
        result,
        body=body,
        source=source,
        base_url=base_url,
        message_id=message_id,
    )
    log.info("%s access grant %s on pool %s: %s", source, verdict.request_id, verdict.pool_id, verdict.kind)
    return verdict


def _past_pool_check(status: dict[str, Any]) -> bool:
    custom = status.get("customStatus")
    return isinstance(custom, dict) and custom.get("phase") not in (None, ACCEPTED, CHECKING_POOL)


async def access_grant_over_http(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """400 named errors, 409 reused requestId, then after the pool check: 404 no such pool, 409 a pool that
    cannot take SSH users (with what to do), else 202 with the status URLs."""
    pool_id = req.route_params.get("poolId", "")
    if not POOL_ID.match(pool_id):
        return json_response({"error": BAD_POOL_ID}, 400)
    base_url = origin(req.url)
    verdict = await receive_access_grant(
        client, req.get_body(), pool_id=pool_id, source="http", base_url=base_url
    )
    if verdict.kind == REJECTED:
        return json_response({"errors": verdict.errors}, 400)
    if verdict.kind == CONFLICT:
        return json_response(verdict.to_json(), 409)
    status = await wait_for(client, verdict.instance_id, _past_pool_check, POOL_CHECK_WAIT_SECONDS)
    output = (status or {}).get("output")
    if isinstance(output, dict) and output.get("outcome") == REJECTED:
        error = output["error"]
        body = {**verdict.to_json(), "result": REJECTED, "error": f"{error['code']}: {error['message']}",
                "code": error["code"]}  # fmt: skip
        return json_response(body, int(output.get("status") or 409))
    body = {**verdict.to_json(), "poolStatusUri": f"{base_url}/api/pools/{pool_id}"}
    return accepted(req, client, verdict.instance_id, body)
