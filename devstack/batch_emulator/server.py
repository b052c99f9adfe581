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
from devstack.batch_emulator.conformance import API_VERSIONS
from devstack.batch_emulator.control import PREFIX, ControlApi
from devstack.batch_emulator.faults import HttpFault
from devstack.batch_emulator.lifecycle import EmulatorRuntime
from devstack.batch_emulator.render import timestamp
from devstack.batch_emulator.responses import BatchResponses, json_response, with_metadata
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
    access_log: bool = False
    user_expiry: str = "day"
    max_nodes_per_pool: int = 2000
    dedicated_core_quota: int | None = None
    low_priority_core_quota: int | None = None


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
            response = _error_response(request, exc, request_id)
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            exc = errors.BatchServiceError(
                500, "InternalServerError", "The server encountered an internal error."
            )
            response = _error_response(request, exc, request_id)
        response.headers["request-id"] = request_id
        # The service returns client-request-id only when asked to (return-client-request-id: true).
        client_request_id = request.headers.get("client-request-id")
        if client_request_id and request.headers.get("return-client-request-id", "").lower() == "true":
            response.headers["client-request-id"] = client_request_id
        response.headers["DataServiceVersion"] = "3.0"
        return response

    app = web.Application(middlewares=[pipeline], client_max_size=MAX_BODY)
    add_batch_routes(app, BatchResponses(runtime))
    ControlApi(runtime, timing_name=timing_name).add_routes(app)
    app["runtime"] = runtime
    return app


def _error_response(request: web.Request, exc: errors.BatchServiceError, request_id: str) -> web.Response:
    body = exc.to_body(request_id, timestamp(datetime.now(UTC)))
    if request.method == "HEAD":
        return web.Response(status=exc.status, headers=exc.headers)
    return json_response(with_metadata(request, "error", body), exc.status, exc.headers)


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
    version = request.query.get("api-version")
    if not version:
        raise errors.missing_query("api-version")
    if version not in API_VERSIONS:
        raise errors.unsupported_request_version(version)
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
    if fault is None:
        return await handler(request)
    if not fault.after:
        return _fail(request, fault, operation)
    # A fault after the operation: it takes effect (or fails on its own), and its answer is lost.
    try:
        await handler(request)
    except errors.BatchServiceError:
        pass
    return _fail(request, fault, operation)


def _fail(request: web.Request, fault: HttpFault, operation: str) -> web.Response:
    if fault.drop:
        # Cut the TCP connection without an answer; the response below is never written.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)
    raise errors.injected(fault.status or 500, operation, fault.retry_after)


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
            user_expiry=cfg.user_expiry,
            max_nodes_per_pool=cfg.max_nodes_per_pool,
            dedicated_core_quota=cfg.dedicated_core_quota,
            low_priority_core_quota=cfg.low_priority_core_quota,
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
