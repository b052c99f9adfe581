"""HTTP triggers: route requests under the route prefix to functions by template and method, enforce
authLevel with the host keys, send the request to the Python runtime as the protocol's RpcHttp, and answer
with the RpcHttp (or other TypedData) it returns; a failed invocation answers 500 with an empty body."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from devstack.functions_host.host_bindings import HTTP_TRIGGER
from devstack.functions_host.invocation import Invoker
from devstack.functions_host.keys import AUTH_LEVELS, FUNCTION, HostKeys, presented_key
from devstack.functions_host.routes import RouteError, RouteTemplate, parse_route
from devstack.functions_host.worker import FunctionSpec

MAX_BODY_BYTES = 100 * 1024 * 1024
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection"}
_CONTENT_TYPES = {"string": "text/plain; charset=utf-8", "json": "application/json"}


@dataclass(frozen=True)
class HttpRoute:
    spec: FunctionSpec
    template: RouteTemplate
    methods: frozenset[str] | None
    auth_level: str


def build_routes(specs: list[FunctionSpec]) -> list[HttpRoute]:
    """The HTTP routes of the app, most specific first; ValueError names the function on a bad route."""
    routes = []
    for spec in specs:
        if spec.trigger_type != HTTP_TRIGGER:
            continue
        trigger = spec.trigger
        try:
            template = parse_route(trigger.get("route") or spec.name)
        except RouteError as exc:
            raise ValueError(f"function {spec.name!r}: {exc}") from None
        level = str(trigger.get("authLevel") or FUNCTION).upper()
        if level not in AUTH_LEVELS:
            raise ValueError(
                f"function {spec.name!r}: authLevel must be one of {', '.join(AUTH_LEVELS)} (got {level})"
            )
        methods = trigger.get("methods")
        routes.append(
            HttpRoute(
                spec=spec,
                template=template,
                methods=frozenset(m.upper() for m in methods) if methods else None,
                auth_level=level,
            )
        )
    routes.sort(key=lambda r: r.template.precedence)
    return routes


class HttpTriggers:
    """The aiohttp handler serving every HTTP-triggered function of the app."""

    def __init__(
        self,
        routes: list[HttpRoute],
        *,
        route_prefix: str,
        keys: HostKeys,
        invoker: Invoker,
        logger: logging.Logger,
    ) -> None:
        self.routes = routes
        self.prefix = route_prefix.strip("/")
        self._keys = keys
        self._invoker = invoker
        self._log = logger

    def mount(self, app: web.Application) -> None:
        """Add the catch-all route (register it after any fixed routes such as the durable API)."""
        path = f"/{self.prefix}{{tail:(/.*)?}}" if self.prefix else "/{tail:.*}"
        app.router.add_route("*", path, self.handle)

    def describe(self, base_url: str) -> list[str]:
        lines = []
        for route in sorted(self.routes, key=lambda r: r.spec.name):
            methods = ",".join(sorted(route.methods)) if route.methods else "*"
            prefix = f"/{self.prefix}" if self.prefix else ""
            lines.append(
                f"  {route.spec.name}: [{methods}] {base_url}{prefix}/{route.template.template.strip('/')}"
                f" ({route.auth_level.lower()})"
            )
        return lines

    def match(self, path: str, method: str) -> tuple[HttpRoute, dict[str, str]] | None:
        for route in self.routes:
            params = route.template.match(path)
            if params is not None and (route.methods is None or method in route.methods):
                return route, params
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        tail = raw_path[len(self.prefix) + 1 :] if self.prefix else raw_path
        found = self.match(tail.strip("/"), request.method.upper())
        if found is None:
            return web.Response(status=404, text="no function matches this method and route\n")
        route, route_params = found
        if not self._keys.allows(route.auth_level, presented_key(request.query, request.headers)):
            return web.Response(
                status=401, text="a valid function key is required (?code= or x-functions-key)\n"
            )
        protos = self._invoker.protos
        request_data = protos.TypedData(
            http=protos.RpcHttp(
                method=request.method.upper(),
                url=str(request.url),
                headers=_joined(request.headers),
                query=_joined(request.query),
                params=route_params,
                body=protos.TypedData(bytes=await request.read()),
            )
        )
        try:
            returned = await self._invoker.invoke(
                route.spec, request_data, describe=lambda r: f"status={response_status(r)}"
            )
        except Exception:
            return web.Response(status=500)
        return to_web_response(returned)


def _joined(pairs) -> dict[str, str]:
    merged: dict[str, str] = {}
    for key, value in pairs.items():
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def response_status(returned: Any) -> int:
    """The status code the host answers for a function's `$return` TypedData."""
    if returned is not None and returned.WhichOneof("data") == "http":
        return int(returned.http.status_code or 200)
    return 200


def to_web_response(returned: Any) -> web.Response:
    """The HTTP answer for the `$return` TypedData: an RpcHttp as given (status, headers, cookies, body);
    any other value is a 200 whose body is that value."""
    if returned is not None and returned.WhichOneof("data") == "http":
        http = returned.http
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in http.headers.items():
            if name.lower() not in _HOP_HEADERS:
                headers.add(name, value)
        for cookie in http.cookies:
            headers.add("Set-Cookie", _cookie_header(cookie))
        return web.Response(status=response_status(returned), headers=headers, body=_body_bytes(http.body))
    kind = returned.WhichOneof("data") if returned is not None else None
    content_type = _CONTENT_TYPES.get(kind, "application/octet-stream")
    return web.Response(status=200, body=_body_bytes(returned), headers={"Content-Type": content_type})


def _body_bytes(data: Any) -> bytes:
    kind = data.WhichOneof("data") if data is not None else None
    if kind is None:
        return b""
    value = getattr(data, kind)
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _cookie_header(cookie: Any) -> str:
    parts = [f"{cookie.name}={cookie.value}"]
    if cookie.domain.WhichOneof("string"):
        parts.append(f"Domain={cookie.domain.value}")
    if cookie.path.WhichOneof("string"):
        parts.append(f"Path={cookie.path.value}")
    if cookie.max_age.WhichOneof("double"):
        parts.append(f"Max-Age={int(cookie.max_age.value)}")
    if cookie.expires.WhichOneof("timestamp"):
        moment = cookie.expires.value.ToDatetime()
        parts.append("Expires=" + moment.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    if cookie.secure.WhichOneof("bool") and cookie.secure.value:
        parts.append("Secure")
    if cookie.http_only.WhichOneof("bool") and cookie.http_only.value:
        parts.append("HttpOnly")
    same_site = {1: "Lax", 2: "Strict", 3: "None"}.get(cookie.same_site)
    if same_site:
        parts.append(f"SameSite={same_site}")
    return "; ".join(parts)
