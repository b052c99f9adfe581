"""HTTP triggers: route requests under the route prefix to functions by template and method, enforce
authLevel with the host keys, build a real `func.HttpRequest`, and send back the function's response."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import azure.functions as func
from aiohttp import web
from azure.functions import _abc
from azure.functions.http import HttpRequest, HttpResponseConverter
from multidict import CIMultiDict

from devstack.functions_host.app_loader import HTTP_TRIGGER, FunctionSpec
from devstack.functions_host.invocation import Invoker
from devstack.functions_host.keys import AUTH_LEVELS, FUNCTION, HostKeys, presented_key
from devstack.functions_host.routes import RouteError, RouteTemplate, parse_route

MAX_BODY_BYTES = 100 * 1024 * 1024
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection"}


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
        req = HttpRequest(
            method=request.method.upper(),
            url=str(request.url),
            headers=_joined(request.headers),
            params=_joined(request.query),
            route_params=route_params,
            body_type="bytes",
            body=await request.read(),
        )
        try:
            return await self._invoker.invoke(
                route.spec,
                req,
                finish=to_web_response,
                describe=lambda r: f"status={r.status}",
            )
        except Exception:
            return web.Response(status=500)


def _joined(pairs) -> dict[str, str]:
    merged: dict[str, str] = {}
    for key, value in pairs.items():
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def to_web_response(result: object) -> web.Response:
    """The HTTP answer for a function's return value, encoded as the worker encodes it."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        result = func.HttpResponse(result)
    if not isinstance(result, _abc.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}; return func.HttpResponse or str")
    datum = HttpResponseConverter.encode(result, expected_type=None).value
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in datum["headers"].items():
        if name.lower() not in _HOP_HEADERS:
            headers.add(name, value.value)
    for cookie in datum.get("cookies") or []:
        for morsel in cookie.values():
            headers.add("Set-Cookie", morsel.OutputString())
    return web.Response(status=int(datum["status_code"].value), headers=headers, body=datum["body"].value)
