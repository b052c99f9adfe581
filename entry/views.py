"""The read routes: a pool as it is (across all requests for it), the managed pools, a pool's connections in
three formats, one user's access across pools."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import azure.durable_functions as df
import azure.functions as func

from entry.durable import instance_status
from entry.http import BAD_POOL_ID, BAD_USER, POOL_ID, USER, json_response
from provisioning.pool_registry import DELETED, GONE, ManagedPools
from provisioning.progress import phase_of, pool_view
from provisioning.records import render_ssh_config, render_table
from provisioning.settings import load_settings
from provisioning.storage import ConnectionRecords, RequestEntries
from provisioning.views import managed_section, pool_summary

FORMATS = {"json", "table", "ssh_config"}


def _pool_state(pool_id: str) -> tuple:
    settings = load_settings()
    pools = ManagedPools(settings)
    managed = pools.get(pool_id)
    grants = pools.grants(pool_id, active_at=datetime.now(UTC)) if managed else []
    entry = RequestEntries(settings).latest_for_pool(pool_id)
    return entry, managed, grants, ConnectionRecords(settings).for_pool(pool_id)


async def pool_over_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/pools/{poolId}: the latest request's phase and outcome, and the pool as the app manages it
    (users with expiry, nodes, records), so a failed change request does not hide a working pool."""
    pool_id = req.route_params.get("poolId", "")
    if not POOL_ID.match(pool_id):
        return json_response({"error": BAD_POOL_ID}, 400)
    entry, managed, grants, records = await asyncio.to_thread(_pool_state, pool_id)
    if entry is None and managed is None and not records:
        return json_response({"error": f"no request is known for pool {pool_id}"}, 404)
    status = await instance_status(client, entry["instanceId"]) if entry and entry.get("instanceId") else None
    view = pool_view(pool_id, entry, status, [r.to_json() for r in records])
    view["kind"] = (entry or {}).get("kind")
    view["pool"] = managed_section(managed, grants, records)
    return json_response(view)


def _pools() -> list[tuple]:
    settings = load_settings()
    pools, entries, now = ManagedPools(settings), RequestEntries(settings), datetime.now(UTC)
    return [
        (managed, entries.latest_for_pool(managed["poolId"]), pools.grants(managed["poolId"], active_at=now))
        for managed in pools.all()
        if managed["state"] not in (DELETED, GONE)
    ]


async def pools_over_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/pools: every pool the app manages."""
    rows = await asyncio.to_thread(_pools)
    listed = []
    for managed, entry, grants in rows:
        status = (
            await instance_status(client, entry["instanceId"]) if entry and entry.get("instanceId") else None
        )
        listed.append(pool_summary(managed, phase_of(entry, status) if entry else None, grants))
    return json_response({"pools": listed})


async def connections_over_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/pools/{poolId}/connections[?format=json|table|ssh_config]: the SSH connection records."""
    pool_id, kind = req.route_params.get("poolId", ""), (req.params.get("format") or "json").lower()
    if not POOL_ID.match(pool_id):
        return json_response({"error": BAD_POOL_ID}, 400)
    if kind not in FORMATS:
        return json_response({"error": "format: must be one of json, table, ssh_config"}, 400)
    records = await asyncio.to_thread(lambda: ConnectionRecords(load_settings()).for_pool(pool_id))
    if kind == "table":
        return func.HttpResponse(render_table(records), mimetype="text/plain")
    if kind == "ssh_config":
        return func.HttpResponse(render_ssh_config(records), mimetype="text/plain")
    return json_response({"poolId": pool_id, "connections": [r.to_json() for r in records]})


async def user_access_over_http(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/users/{user}/access: every active record of the user, across pools."""
    user = req.route_params.get("user", "")
    if not USER.match(user):
        return json_response({"error": BAD_USER}, 400)
    records = await asyncio.to_thread(lambda: ConnectionRecords(load_settings()).active_for_user(user))
    pools = sorted({r.pool_id for r in records})
    return json_response({"user": user, "pools": pools, "access": [r.to_json() for r in records]})
