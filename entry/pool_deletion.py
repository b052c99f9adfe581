"""`DELETE /api/pools/{poolId}`: deletes a pool the app created (202 with status URLs); a pool the app only
manages access on is a 409 naming the alternative, an unknown one a 404."""

from __future__ import annotations

import asyncio

import azure.durable_functions as df
import azure.functions as func

from entry.durable import start_unless_running
from entry.http import BAD_POOL_ID, POOL_ID, accepted, json_response
from provisioning.identity import delete_pool_instance_id
from provisioning.pool_registry import DELETED, GONE, ManagedPools
from provisioning.settings import load_settings


async def delete_pool_over_http(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    pool_id = req.route_params.get("poolId", "")
    if not POOL_ID.match(pool_id):
        return json_response({"error": BAD_POOL_ID}, 400)
    managed = await asyncio.to_thread(ManagedPools(load_settings()).get, pool_id)
    if managed is None or managed["state"] in (DELETED, GONE):
        return json_response({"error": f"the app does not manage a pool {pool_id}"}, 404)
    if not managed["createdByApp"]:
        message = (
            f"pool {pool_id} was not created by this app, which only manages access on it: revoke its users "
            f"instead (DELETE /api/pools/{pool_id}/users/{{user}}); the pool itself stays"
        )
        return json_response({"error": message}, 409)
    instance_id = delete_pool_instance_id(pool_id)
    await start_unless_running(
        client, "delete_managed_pool", instance_id, {"poolId": managed["poolId"], "reason": "requested"}
    )
    return accepted(req, client, instance_id, {"poolId": managed["poolId"], "instanceId": instance_id})
