"""The durable HTTP API on the host's aiohttp app: the public webhook API under
/runtime/webhooks/durabletask/ (the durabletask_extension system key or the master key, as on Azure; a
function key is refused) and the same API for the SDK's DurableOrchestrationClient under
/durabletask/{system key}/ (loopback callers only: the SDK sends no key, so its rpcBaseUrl carries it;
anything else under /durabletask/ answers 401), plus the client binding JSON pointing at them.

Routes, status codes and bodies follow the Durable Functions extension's HTTP API."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import quote

from aiohttp import web

from devstack.functions_host.durable.engine import DurableEngine
from devstack.functions_host.durable.errors import (
    InstanceExistsError,
    InstanceFinishedError,
    InstanceNotFinishedError,
)
from devstack.functions_host.durable.protocol import parse_time
from devstack.functions_host.durable.status import TERMINAL_STATUSES

PUBLIC_BASE = "/runtime/webhooks/durabletask"
RPC_BASE = "/durabletask"
DEFAULT_CONNECTION = "Storage"
INSTANCE_ID_PLACEHOLDER = "INSTANCEID"
RUNNING_RETRY_AFTER = "5"
CHECK_STATUS_RETRY_AFTER = "10"
UNSUPPORTED_OPERATIONS = ("rewind", "restart", "suspend", "resume")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def client_binding_json(*, base_url: str, task_hub: str, connection: str, key: str) -> str:
    """The JSON string the SDK's durable client binding expects (DurableOrchestrationClient(binding)); `key`
    is the durable system key: it goes into the management URLs and the RPC base URL."""
    origin = base_url.rstrip("/")
    webhooks = origin + PUBLIC_BASE
    create = f"{webhooks}/orchestrators/{{functionName}}[/{{instanceId}}]"
    return json.dumps(
        {
            "taskHubName": task_hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{create}?code={key}",
                "createAndWaitOnNewInstancePostUri": (
                    f"{create}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&code={key}"
                ),
            },
            "managementUrls": management_urls(webhooks, INSTANCE_ID_PLACEHOLDER, task_hub, connection, key),
            "baseUrl": webhooks,
            "requiredQueryStringParameters": f"code={key}",
            "rpcBaseUrl": f"{origin}{RPC_BASE}/{key}/",
            "httpBaseUrl": webhooks,
        }
    )


def management_urls(webhooks: str, instance_id: str, task_hub: str, connection: str, key: str | None) -> dict:
    """The instance management URLs (the check-status payload), as the extension builds them."""
    encoded = instance_id if instance_id == INSTANCE_ID_PLACEHOLDER else quote(instance_id, safe="")
    instance = f"{webhooks}/instances/{encoded}"
    query = f"taskHub={quote(task_hub, safe='')}&connection={quote(connection, safe='')}"
    if key:
        query += f"&code={key}"
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{instance}?{query}",
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{instance}?{query}",
        "restartPostUri": f"{instance}/restart?{query}",
        "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
    }


def add_durable_routes(
    app: web.Application,
    engine: DurableEngine,
    *,
    check_key: Callable[[web.Request], bool],
    key: str,
    connection: str = DEFAULT_CONNECTION,
) -> None:
    """Mount the public webhook API (requests must pass `check_key`) and the loopback-only RPC API under
    /durabletask/{key}/. `key` (the durable system key) also goes into the management URLs of
    check-status responses."""
    api = _DurableApi(engine, key=key, connection=connection)
    rpc_base = f"{RPC_BASE}/{key}"
    for base, guard in ((PUBLIC_BASE, _require_key(check_key)), (rpc_base, _require_loopback)):
        routes = [
            ("POST", "/orchestrators/{function_name}", api.start),
            ("POST", "/orchestrators/{function_name}/{instance_id}", api.start),
            ("GET", "/instances", api.query),
            ("GET", "/instances/", api.query),
            ("DELETE", "/instances", api.purge_by),
            ("DELETE", "/instances/", api.purge_by),
            ("GET", "/instances/{instance_id}", api.status),
            ("DELETE", "/instances/{instance_id}", api.purge),
            ("POST", "/instances/{instance_id}/terminate", api.terminate),
            ("POST", "/instances/{instance_id}/raiseEvent/{event_name}", api.raise_event),
            ("POST", "/instances/{instance_id}/{operation}", api.unsupported),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, base + path, guard(handler))
    app.router.add_route("*", RPC_BASE + "{tail:(/.*)?}", _no_key)


async def _no_key(request: web.Request) -> web.StreamResponse:
    message = "the durable API requires the durabletask_extension system key"
    return web.json_response({"Message": message}, status=401)


def _require_key(check_key: Callable[[web.Request], bool]) -> Callable[[Handler], Handler]:
    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not check_key(request):
                return web.json_response(
                    {
                        "Message": "the durable API requires the durabletask_extension system key or the "
                        "master key (?code= or x-functions-key)"
                    },
                    status=401,
                )
            return await handler(request)

        return guarded

    return wrap


def _require_loopback(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not _is_loopback(request.remote):
            return web.json_response(
                {"Message": "the durable RPC API answers loopback callers only"}, status=403
            )
        return await handler(request)

    return guarded


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"Message": message, "ExceptionMessage": message}, status=status)


def _bool_param(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return default


class _BadRequest(Exception):
    pass


def _time_param(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise _BadRequest(f"query parameter {name}: '{value}' is not an ISO 8601 date-time") from None


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise _BadRequest(f"query parameter {name}: '{value}' is not an integer") from None
    if number < 1:
        raise _BadRequest(f"query parameter {name}: must be at least 1")
    return number


def _status_list(request: web.Request) -> list[str] | None:
    values = [v.strip() for item in request.query.getall("runtimeStatus", []) for v in item.split(",")]
    known = [
        v
        for v in values
        if v in ("Pending", "Running", "Completed", "Failed", "Terminated", "ContinuedAsNew")
    ]
    return known or None


async def _body_json(request: web.Request) -> str | None:
    """The request body if it is JSON text (None when empty); _BadRequest otherwise."""
    text = await request.text()
    if not text.strip():
        return None
    try:
        json.loads(text)
    except ValueError:
        raise _BadRequest("Invalid JSON content") from None
    return text


class _DurableApi:
    def __init__(self, engine: DurableEngine, *, key: str, connection: str) -> None:
        self.engine = engine
        self.key = key
        self.connection = connection

    def _links(self, request: web.Request, instance_id: str) -> dict:
        webhooks = f"{request.scheme}://{request.host}{PUBLIC_BASE}"
        return management_urls(webhooks, instance_id, self.engine.task_hub, self.connection, self.key)

    def _check_status_response(self, request: web.Request, instance_id: str) -> web.Response:
        links = self._links(request, instance_id)
        return web.json_response(
            links,
            status=202,
            headers={"Location": links["statusQueryGetUri"], "Retry-After": CHECK_STATUS_RETRY_AFTER},
        )

    async def start(self, request: web.Request) -> web.Response:
        name = request.match_info["function_name"]
        instance_id = request.match_info.get("instance_id") or None
        try:
            raw_input = await _body_json(request)
            timeout = _float_param(request, "timeout")
            interval = _float_param(request, "pollingInterval")
            instance_id = await self.engine.start_new_raw(name, instance_id, raw_input)
        except _BadRequest as exc:
            return _error(400, str(exc))
        except InstanceExistsError as exc:
            return _error(409, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        if timeout is not None and interval is not None:
            try:
                status = await self.engine.wait_for(instance_id, timeout)
            except TimeoutError:
                return self._check_status_response(request, instance_id)
            if status["runtimeStatus"] == "Completed":
                return web.json_response(status["output"], status=200)
            return web.json_response(status, status=200)
        return self._check_status_response(request, instance_id)

    async def status(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        status = await self.engine.get_status(
            instance_id,
            show_history=_bool_param(request, "showHistory", False),
            show_history_output=_bool_param(request, "showHistoryOutput", False),
            show_input=_bool_param(request, "showInput", True),
        )
        if status is None:
            return web.Response(status=404)
        runtime = status["runtimeStatus"]
        if runtime in TERMINAL_STATUSES:
            failed_500 = runtime == "Failed" and _bool_param(
                request, "returnInternalServerErrorOnFailure", False
            )
            return web.json_response(status, status=500 if failed_500 else 200)
        return web.json_response(
            status, status=202, headers={"Location": str(request.url), "Retry-After": RUNNING_RETRY_AFTER}
        )

    async def query(self, request: web.Request) -> web.Response:
        try:
            statuses = await self.engine.query(
                runtime_status=_status_list(request),
                created_from=_time_param(request, "createdTimeFrom"),
                created_to=_time_param(request, "createdTimeTo"),
                top=_int_param(request, "top"),
                instance_id_prefix=request.query.get("instanceIdPrefix") or None,
                show_input=_bool_param(request, "showInput", True),
            )
        except (_BadRequest, ValueError) as exc:
            return _error(400, str(exc))
        return web.json_response(statuses)

    async def purge(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        try:
            deleted = await self.engine.purge(instance_id)
        except InstanceNotFinishedError as exc:
            return _error(412, str(exc))
        if not deleted:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": deleted})

    async def purge_by(self, request: web.Request) -> web.Response:
        try:
            created_from = _time_param(request, "createdTimeFrom")
            if created_from is None:
                raise _BadRequest("Please provide value for 'createdTimeFrom' parameter.")
            statuses = await self.engine.query(
                runtime_status=_status_list(request) or sorted(TERMINAL_STATUSES),
                created_from=created_from,
                created_to=_time_param(request, "createdTimeTo"),
                show_input=False,
            )
        except (_BadRequest, ValueError) as exc:
            return _error(400, str(exc))
        deleted = 0
        for status in statuses:
            if status["runtimeStatus"] in TERMINAL_STATUSES:
                try:
                    deleted += await self.engine.purge(status["instanceId"])
                except InstanceNotFinishedError:
                    continue
        if not deleted:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": deleted})

    async def terminate(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        try:
            await self.engine.terminate(instance_id, request.query.get("reason", ""))
        except KeyError:
            return web.Response(status=404)
        except InstanceFinishedError:
            return web.Response(status=410)
        return web.Response(status=202)

    async def raise_event(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        status = await self.engine.get_status(instance_id, show_input=False)
        if status is None:
            return web.Response(status=404)
        if status["runtimeStatus"] in TERMINAL_STATUSES:
            return web.Response(status=410)
        if request.content_type.lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        try:
            data_json = await _body_json(request)
            await self.engine.raise_event(instance_id, request.match_info["event_name"], data_json)
        except _BadRequest as exc:
            return _error(400, str(exc))
        except KeyError:
            return web.Response(status=404)
        except InstanceFinishedError:
            return web.Response(status=410)
        except ValueError as exc:
            return _error(400, str(exc))
        return web.Response(status=202)

    async def unsupported(self, request: web.Request) -> web.Response:
        operation = request.match_info["operation"]
        if operation.lower() not in UNSUPPORTED_OPERATIONS:
            return web.Response(status=404)
        return _error(501, f"'{operation}' is not supported by the local durable engine")


def _float_param(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise _BadRequest(f"query parameter {name}: '{value}' is not a number of seconds") from None
