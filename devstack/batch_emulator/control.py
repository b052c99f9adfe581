"""The emulator's own control API under /_emulator/ (no SharedKey, loopback only): health, call counters,
fault injection, forcing node states, and reset. Documented in README.md."""

from __future__ import annotations

import json
import os
from typing import Any

from aiohttp import web

from devstack.batch_emulator import exceptions as errors
from devstack.batch_emulator.faults import FaultSpecError
from devstack.batch_emulator.lifecycle import EmulatorRuntime
from devstack.batch_emulator.models import InvalidTransition, NodeState
from devstack.batch_emulator.render import timestamp
from devstack.batch_emulator.routes import OPERATIONS

PREFIX = "/_emulator"
SETTABLE_STATES = (NodeState.UNUSABLE, NodeState.IDLE, NodeState.RUNNING, NodeState.OFFLINE)
ALLOCATION_FAULT_PATHS = {
    "resize-error": "resizeError",
    "start-task-failure": "startTaskFailure",
    "unusable": "unusable",
}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not valid JSON: {exc}"}), content_type="application/json"
        ) from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        )
    return data


def _user_view(user: Any, precision: str) -> dict[str, Any]:
    """A node user as the node holds it (never its password or key): expiryTime as sent, and loginUntil,
    the moment logins stop at the emulator's expiry precision (--user-expiry)."""
    return {
        "name": user.name,
        "isAdmin": user.is_admin,
        "expiryTime": timestamp(user.credentials.expiry_time),
        "loginUntil": timestamp(user.login_until(precision)),
        "password": user.credentials.password_hash is not None,
        "sshPublicKey": user.credentials.ssh_public_key is not None,
    }


class ControlApi:
    def __init__(self, runtime: EmulatorRuntime, *, timing_name: str) -> None:
        self.runtime = runtime
        self.timing_name = timing_name

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(f"{PREFIX}/health", self.health)
        r.add_get(f"{PREFIX}/counters", self.counters)
        r.add_post(f"{PREFIX}/counters/reset", self.reset_counters)
        r.add_delete(f"{PREFIX}/counters", self.reset_counters)
        r.add_get(f"{PREFIX}/faults", self.list_faults)
        r.add_post(f"{PREFIX}/faults", self.add_http_fault)
        r.add_delete(f"{PREFIX}/faults", self.clear_faults)
        r.add_post(f"{PREFIX}/faults/{{kind}}", self.add_allocation_fault)
        r.add_get(f"{PREFIX}/pools/{{poolId}}/nodes", self.pool_nodes)
        r.add_post(f"{PREFIX}/pools/{{poolId}}/nodes/{{nodeId}}/state", self.set_node_state)
        r.add_post(f"{PREFIX}/reset", self.reset)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "pid": os.getpid(),
                "account": self.runtime.account.name,
                "timing": self.timing_name,
                "sshNetwork": str(self.runtime.addresses.network),
                "userExpiry": self.runtime.account.user_expiry,
                "maxNodesPerPool": self.runtime.account.max_nodes_per_pool,
                "coreQuotas": {
                    "dedicated": self.runtime.account.core_quotas[True],
                    "lowPriority": self.runtime.account.core_quotas[False],
                },
                **self.runtime.stats(),
            }
        )

    async def counters(self, request: web.Request) -> web.Response:
        return web.json_response(self.runtime.faults.counters())

    async def reset_counters(self, request: web.Request) -> web.Response:
        self.runtime.faults.reset_counters()
        return web.json_response(self.runtime.faults.counters())

    async def list_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.runtime.faults.to_dict())

    async def add_http_fault(self, request: web.Request) -> web.Response:
        body = await _body(request)
        operation = body.get("operation", "*")
        if operation != "*" and operation not in OPERATIONS:
            return _error(400, f"'operation' must be '*' or one of: {', '.join(sorted(OPERATIONS))}")
        try:
            fault = self.runtime.faults.add_http(body)
        except FaultSpecError as exc:
            return _error(400, str(exc))
        return web.json_response(fault.to_dict(), status=201)

    async def add_allocation_fault(self, request: web.Request) -> web.Response:
        kind = ALLOCATION_FAULT_PATHS.get(request.match_info["kind"])
        if kind is None:
            return _error(404, f"unknown fault kind; use one of {', '.join(ALLOCATION_FAULT_PATHS)}")
        try:
            fault = self.runtime.faults.add_allocation(kind, await _body(request))
        except FaultSpecError as exc:
            return _error(400, str(exc))
        return web.json_response(fault.to_dict(), status=201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.runtime.faults.clear()
        return web.json_response(self.runtime.faults.to_dict())

    async def pool_nodes(self, request: web.Request) -> web.Response:
        try:
            pool = self.runtime.account.get_pool(request.match_info["poolId"])
        except errors.BatchServiceError as exc:
            return _error(exc.status, exc.message)
        nodes = []
        for node in pool.nodes.values():
            ssh = node.ssh_endpoint
            nodes.append(
                {
                    "id": node.id,
                    "index": node.index,
                    "state": str(node.state),
                    "root": str(self.runtime.layout(pool, node).root),
                    "ssh": {"address": ssh.public_ip, "port": ssh.frontend_port} if ssh else None,
                    "users": sorted(node.users),
                    "userAccounts": [
                        _user_view(user, self.runtime.account.user_expiry) for user in node.users.values()
                    ],
                }
            )
        return web.json_response({"poolId": pool.id, "publicIPAddress": pool.public_ip, "nodes": nodes})

    async def set_node_state(self, request: web.Request) -> web.Response:
        body = await _body(request)
        state = body.get("state")
        if state not in [str(s) for s in SETTABLE_STATES]:
            return _error(400, f"'state' must be one of {', '.join(str(s) for s in SETTABLE_STATES)}")
        info = request.match_info
        try:
            node = self.runtime.set_node_state(info["poolId"], info["nodeId"], state)
        except errors.BatchServiceError as exc:
            return _error(exc.status, exc.message)
        except InvalidTransition as exc:
            return _error(409, str(exc))
        return web.json_response({"id": node.id, "state": str(node.state)})

    async def reset(self, request: web.Request) -> web.Response:
        await self.runtime.reset()
        return web.json_response({"status": "reset", **self.runtime.stats()})
