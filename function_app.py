"""The Function app: its queue, HTTP and timer triggers, and the orchestration and activity blueprints.

Each trigger hands its input to one entry in entry/ (validate, start or query, answer); the processes live in
orchestrations/, the effects in activities/, the rules in provisioning/.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

from activities import batch_pools, connection_records, events, managed_pools, node_users
from entry import access_grant, pool_deletion, pool_request, revocation, views
from entry.durable import start_unless_running
from entry.queue import receive_queue_message
from orchestrations import access, fan_out, granting, provision, reconcile
from orchestrations import pool_deletion as deletion
from provisioning.identity import CLEANUP_INSTANCE_ID, RECONCILE_INSTANCE_ID

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (
    provision.bp,
    granting.bp,
    access.bp,
    deletion.bp,
    reconcile.bp,
    fan_out.bp,
    batch_pools.bp,
    node_users.bp,
    connection_records.bp,
    managed_pools.bp,
    events.bp,
):
    app.register_functions(blueprint)

log = logging.getLogger("function_app")
REQUEST_QUEUE = os.environ.get("REQUEST_QUEUE_NAME") or "pool-requests"
RECONCILE_SCHEDULE = os.environ.get("RECONCILE_SCHEDULE") or "0 */5 * * * *"


# ---- queue: other systems ---------------------------------------------------------------------------------


@app.queue_trigger(arg_name="msg", queue_name=REQUEST_QUEUE, connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def pool_request_from_queue(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    """A pool request, or an access grant (`"kind": "grant-access"`); a rejection is recorded, not retried."""
    await receive_queue_message(client, msg.get_body(), msg.id)


# ---- HTTP: people and tools -------------------------------------------------------------------------------


@app.route(route="pools", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_pool(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """POST /api/pools: create a pool with SSH access."""
    return await pool_request.pool_request_over_http(req, client)


@app.route(route="pools/{poolId}/access", methods=["POST"])
@app.durable_client_input(client_name="client")
async def grant_access(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """POST /api/pools/{poolId}/access: add users, rotate keys or extend expiries on an existing pool."""
    return await access_grant.access_grant_over_http(req, client)


@app.route(route="pools", methods=["GET"])
@app.durable_client_input(client_name="client")
async def list_pools(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/pools: every pool the app manages."""
    return await views.pools_over_http(req, client)


@app.route(route="pools/{poolId}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def get_pool(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/pools/{poolId}: the pool as it is, and the latest request's phase."""
    return await views.pool_over_http(req, client)


@app.route(route="pools/{poolId}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def remove_pool(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """DELETE /api/pools/{poolId}: delete a pool the app created."""
    return await pool_deletion.delete_pool_over_http(req, client)


@app.route(route="pools/{poolId}/connections", methods=["GET"])
async def get_connections(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/pools/{poolId}/connections[?format=json|table|ssh_config]."""
    return await views.connections_over_http(req)


@app.route(route="pools/{poolId}/users/{user}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def revoke_user(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """DELETE /api/pools/{poolId}/users/{user}: take away access the app granted."""
    return await revocation.revoke_over_http(req, client)


@app.route(route="users/{user}/access", methods=["GET"])
async def get_user_access(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/users/{user}/access: the user's active access across pools."""
    return await views.user_access_over_http(req)


OPENAPI_DOCUMENT = Path(__file__).resolve().parent / "schemas" / "openapi.json"


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/openapi.json: the OpenAPI 3.1 description of these routes (anonymous: it holds no secret)."""
    return func.HttpResponse(OPENAPI_DOCUMENT.read_bytes(), mimetype="application/json")


# ---- timers: expiry and reconcile -------------------------------------------------------------------------


@app.timer_trigger(arg_name="timer", schedule="%CLEANUP_SCHEDULE%", run_on_startup=False)
@app.durable_client_input(client_name="client")
async def cleanup_expired_access_timer(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    """Start the singleton expiry cleanup unless a run is still going."""
    await start_unless_running(client, "cleanup_expired_access", CLEANUP_INSTANCE_ID, {})


@app.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False)
@app.durable_client_input(client_name="client")
async def reconcile_access_timer(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Start the singleton reconcile unless a run is still going."""
    await start_unless_running(client, "reconcile_access", RECONCILE_INSTANCE_ID, {})
