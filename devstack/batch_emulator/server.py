"""The emulator's HTTP server (aiohttp, loopback only): request pipeline (call counters, api-version,
SharedKey, injected latency and errors), JSON error answers, the control API, and a clean start / stop."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from devstack.batch_emulator import auth
from devstack.batch_emulator import exceptions as errors
from devstack.batch_emulator.catalog import Catalog
from devstack.batch_emulator.control import PREFIX, ControlApi
from devstack.batch_emulator.lifecycle import EmulatorRuntime
from devstack.batch_emulator.render import timestamp
from devstack.batch_emulator.responses import BatchResponses, json_response
from devstack.batch_emulator.routes import add_batch_routes
from devstack.batch_emulator.timing import TimingProfile

log = logging.getLogger("batch_emulator")
MAX_BODY = 4 * 1024 * 1024


def require_loopback(host: str) -> str:
    """The bind address, if it is a loopback IPv4 address ('localhost' means 127.0.0.1); else ValueError."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"--host must be a loopback IP address (127.0.0.0/8), got {host!r}") from exc
    if not (isinstance(address, ipaddress.IPv4Address) and address.is_loopback):
        raise ValueError(f"--host must be a loopback IP address (127.0.0.0/8), got {host}")
    return host


@dataclass
class EmulatorConfig:
    host: str
    port: int
    account: str
    key: str
    catalog: Catalog
    timing: TimingProfile
    timing_name: str
    ssh_network: str
    data_dir: Path
    start_task_concurrency: int = 4
    access_log: bool = False


def build_app(runtime: EmulatorRuntime, *, key: str, timing_name: str) -> web.Application:
    """The aiohttp application: Batch routes behind the request pipeline, and the control API."""

    @web.middleware
    async def pipeline(request: web.Request, handler):  # noqa: ANN001 - aiohttp handler type
        request_id = str(uuid.uuid4())
        if request.path.startswith(PREFIX + "/") or request.path == PREFIX:
            return await _control(request, handler)
        try:
            response = await _batch(request, handler, runtime, key)
        except errors.BatchServiceError as exc:
            response = json_response(
                exc.to_body(request_id, timestamp(datetime.now(UTC))), exc.status, exc.headers
            )
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            exc = errors.BatchServiceError(
                500, "InternalServerError", "The server encountered an internal error."
            )
            response = json_response(exc.to_body(request_id, timestamp(datetime.now(UTC))), 500)
        response.headers["request-id"] = request_id
        client_request_id = request.headers.get("client-request-id")
        if client_request_id:
            response.headers["client-request-id"] = client_request_id
        response.headers["DataServiceVersion"] = "3.0"
        return response

    app = web.Application(middlewares=[pipeline], client_max_size=MAX_BODY)
    add_batch_routes(app, BatchResponses(runtime))
    ControlApi(runtime, timing_name=timing_name).add_routes(app)
    app["runtime"] = runtime
    return app


async def _control(request: web.Request, handler) -> web.StreamResponse:  # noqa: ANN001
    peer = request.remote or ""
    try:
        loopback = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return web.json_response({"error": "the control API answers loopback clients only"}, status=403)
    return await handler(request)


async def _batch(request: web.Request, handler, runtime: EmulatorRuntime, key: str) -> web.StreamResponse:  # noqa: ANN001
    route = request.match_info.route
    operation = route.name
    if operation is None:
        raise errors.unsupported_operation(request.method, request.path)
    runtime.faults.record_call(operation)
    if not request.query.get("api-version"):
        raise errors.missing_query("api-version")
    raw_path, _, raw_query = request.raw_path.partition("?")
    auth.verify_request(
        method=request.method,
        raw_path=raw_path,
        query=raw_query,
        headers=list(request.headers.items()),
        account=runtime.account.name,
        key=key,
    )
    delay, fault = runtime.faults.pick(operation)
    if delay:
        await asyncio.sleep(delay)
    if fault is not None:
        if fault.drop:
            # Cut the TCP connection without an answer; the response below is never written.
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        raise errors.injected(fault.status or 500, operation, fault.retry_after)
    return await handler(request)


class EmulatorServer:
    """Runs the app on host:port until stop(); `url` is known once started (port 0 picks a free port)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.config.host = require_loopback(config.host)
        self.runtime: EmulatorRuntime | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        cfg = self.config
        self.runtime = EmulatorRuntime(
            account_name=cfg.account,
            catalog=cfg.catalog,
            timing=cfg.timing,
            data_dir=cfg.data_dir,
            ssh_network=cfg.ssh_network,
            start_task_concurrency=cfg.start_task_concurrency,
        )
        app = build_app(self.runtime, key=cfg.key, timing_name=cfg.timing_name)
        self._runner = web.AppRunner(app, access_log=log if cfg.access_log else None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port, reuse_address=True)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # the bound port (0 -> real)
        self.url = f"http://{cfg.host}:{port}"
        self.runtime.base_url = self.url
        return self.url

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
