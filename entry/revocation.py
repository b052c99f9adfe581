"""`DELETE /api/pools/{poolId}/users/{user}`: only a user the app granted on that pool (its records say so);
anything else is a 404 before any Batch call. Answers 200 with the result when the revocation finishes within
a few seconds, else 202 with the status URLs."""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df
import azure.functions as func

from entry.durable import start_unless_running, wait_for
from entry.http import BAD_POOL_ID, BAD_USER, POOL_ID, USER, json_response
from provisioning import telemetry
from provisioning.identity import revoke_instance_id
from provisioning.settings import load_settings
from provisioning.storage import ConnectionRecords

REVOKE_WAIT_SECONDS = 20.0
log = logging.getLogger(__name__)


def granted_by_app(pool_id: str, user: str) -> bool:
    """The app has records of `user` on `pool_id` (in any state): it granted that user there."""
    return any(r.user == user for r in ConnectionRecords(load_settings()).for_pool(pool_id))


async def revoke_over_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    pool_id, user = req.route_params.get("poolId", ""), req.route_params.get("user", "")
    if not POOL_ID.match(pool_id):
        return json_response({"error": BAD_POOL_ID}, 400)
    if not USER.match(user):
        return json_response({"error": BAD_USER}, 400)
    if not await asyncio.to_thread(granted_by_app, pool_id, user):
        message = f"the app never granted user {user} on pool {pool_id}; it only removes users it created"
        return json_response({"error": message}, 404)
    instance_id = revoke_instance_id(pool_id, user)
    await start_unless_running(client, "revoke_user_access", instance_id, {"poolId": pool_id, "user": user})
    status = await wait_for(client, instance_id, lambda s: False, REVOKE_WAIT_SECONDS)
    if status and status["runtimeStatus"] == "Completed":
        return json_response({"revoked": status["output"]})
    if status and status["runtimeStatus"] in ("Failed", "Terminated"):
        telemetry.log_revoke_failed(log, pool_id, user, instance_id, status)
        return json_response({"error": "the revocation failed", "detail": status.get("output")}, 500)
    return client.create_check_status_response(req, instance_id)
