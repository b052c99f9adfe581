"""The host itself: start the Python worker on the app (Azure's runtime indexes and loads it), serve HTTP
triggers and the durable API with aiohttp on loopback, run queue listeners, timers and the durable engine,
and stop them all cleanly."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from pathlib import Path

from aiohttp import web

from devstack.functions_host.durable_bridge import build_engine, client_binding_factory, uses_durable
from devstack.functions_host.host_bindings import HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, check_supported
from devstack.functions_host.host_config import HostConfig, load_host_config
from devstack.functions_host.http_trigger import MAX_BODY_BYTES, HttpTriggers, build_routes
from devstack.functions_host.invocation import Invoker
from devstack.functions_host.keys import HostKeys, load_or_create_keys, presented_key
from devstack.functions_host.queue_storage import QueueClients
from devstack.functions_host.queue_trigger import QueueListener
from devstack.functions_host.timer_trigger import TimerRunner, TimerStatusStore
from devstack.functions_host.worker import FunctionSpec, PythonWorker

DATA_DIR_NAME = ".devstack"
READY_PREFIX = "functions-host ready at"
DRAIN_SECONDS = 10.0
POLL_STOP_SECONDS = 2.0


def check_loopback(host: str) -> str:
    """The address itself if it is in 127.0.0.0/8; ValueError otherwise (the host never listens elsewhere)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--host must be an IPv4 loopback address in 127.0.0.0/8 (got {host!r})") from None
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"--host must be an IPv4 loopback address in 127.0.0.0/8 (got {host!r})")
    return host


def default_data_dir(app_dir: Path) -> Path:
    return Path(app_dir) / DATA_DIR_NAME


class FunctionsHost:
    """One app on one loopback port. start() raises on any problem with the app before binding the port."""

    def __init__(
        self,
        app_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 7071,
        data_dir: Path | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.host = check_loopback(host)
        self.port = port
        self.data_dir = Path(data_dir) if data_dir else default_data_dir(self.app_dir)
        self.log = logger or logging.getLogger("functions_host")
        self.config: HostConfig | None = None
        self.specs: list[FunctionSpec] = []
        self.keys: HostKeys | None = None
        self.engine = None
        self.http: HttpTriggers | None = None
        self.worker: PythonWorker | None = None
        self._queues = QueueClients()
        self._listeners: list[QueueListener] = []
        self._timers: list[TimerRunner] = []
        self._polling: list[asyncio.Task] = []
        self._timing: list[asyncio.Task] = []
        self._socket: socket.socket | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self.config = load_host_config(self.app_dir)
        self.worker = PythonWorker(self.host)
        self.specs = await self.worker.start(self.app_dir)
        check_supported(self.specs)
        routes = build_routes(self.specs)
        self._bind()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.keys = load_or_create_keys(self.data_dir)
        invoker = Invoker(
            worker=self.worker,
            queues=self._queues,
            queue_encoding=self.config.queues.message_encoding,
            logger=self.log,
        )
        by_type = {t: [s for s in self.specs if s.trigger_type == t] for t in (QUEUE_TRIGGER, TIMER_TRIGGER)}
        self._listeners = [
            QueueListener(
                s, queues=self._queues, settings=self.config.queues, invoker=invoker, logger=self.log
            )
            for s in by_type[QUEUE_TRIGGER]
        ]
        store = TimerStatusStore(self.data_dir)
        self._timers = [
            TimerRunner(s, store=store, invoker=invoker, logger=self.log) for s in by_type[TIMER_TRIGGER]
        ]
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/admin/host/ping", self._ping)
        app.router.add_get("/admin/host/status", self._status)
        if uses_durable(self.specs):
            invoker.durable_client = await self._start_durable(app, invoker)
        self.http = HttpTriggers(
            routes,
            route_prefix=self.config.http.route_prefix,
            keys=self.keys,
            invoker=invoker,
            logger=self.log,
        )
        self.http.mount(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket, shutdown_timeout=DRAIN_SECONDS).start()
        self._polling = [
            asyncio.create_task(x.run(), name=f"queue trigger {x.spec.name}") for x in self._listeners
        ]
        self._timing = [
            asyncio.create_task(t.run(), name=f"timer trigger {t.spec.name}") for t in self._timers
        ]
        for task in (*self._polling, *self._timing):
            task.add_done_callback(self._report_crash)

    def _bind(self) -> None:
        """Take the port now (fails fast when it is in use; resolves port 0 before URLs are built)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self._socket = sock
        self.port = sock.getsockname()[1]

    def _report_crash(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.log.error("%s stopped unexpectedly", task.get_name(), exc_info=task.exception())

    async def _start_durable(self, app: web.Application, invoker: Invoker):
        from devstack.functions_host.durable.http_api import add_durable_routes

        self.engine = build_engine(
            self.specs, invoker=invoker, settings=self.config.durable, data_dir=self.data_dir, logger=self.log
        )
        await self.engine.start()
        add_durable_routes(app, self.engine, check_key=self._durable_key_ok, key=self.keys.durable_key)
        return client_binding_factory(
            base_url=self.base_url, default_hub=self.config.durable.hub_name, key=self.keys.durable_key
        )

    def _durable_key_ok(self, request: web.Request) -> bool:
        return self.keys.allows_durable_api(presented_key(request.query, request.headers))

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _status(self, request: web.Request) -> web.Response:
        if not self.keys.allows("ADMIN", presented_key(request.query, request.headers)):
            return web.Response(status=401)
        return web.json_response({"state": "Running", "functions": [s.name for s in self.specs]})

    def banner(self) -> list[str]:
        lines = [f"{READY_PREFIX} {self.base_url} key={self.keys.function_key}"]
        lines.append(f"  data directory: {self.data_dir}")
        lines += self.http.describe(self.base_url) if self.http else []
        for spec in self.specs:
            if spec.trigger_type != HTTP_TRIGGER:
                lines.append(f"  {spec.name}: {spec.trigger_type}")
        return lines

    async def stop(self) -> None:
        """Stop triggers, let in-flight work finish (bounded), then stop HTTP, the engine and the clients."""
        for source in (*self._listeners, *self._timers):
            source.stop()
        await asyncio.gather(
            _finish(self._polling, POLL_STOP_SECONDS),
            _finish(self._timing, DRAIN_SECONDS),
            *(x.drain(DRAIN_SECONDS) for x in self._listeners),
            return_exceptions=True,
        )
        if self._runner is not None:
            await self._runner.cleanup()
        elif self._socket is not None:
            self._socket.close()
        if self.engine is not None:
            try:
                await self.engine.stop()
            except Exception:
                self.log.exception("stopping the durable engine failed")
        await self._queues.close()
        if self.worker is not None:
            self.worker.stop()


async def _finish(tasks: list[asyncio.Task], timeout: float) -> None:
    """Wait up to `timeout` seconds for the tasks to end by themselves, then cancel the rest."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
