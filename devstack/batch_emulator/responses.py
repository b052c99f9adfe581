"""HTTP in and out for each Batch operation (thin): read ids, query and body, call the runtime/account, answer
with the service's status code, headers and JSON (paging with odata.nextLink, $filter, $select)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from devstack.batch_emulator import exceptions as errors
from devstack.batch_emulator import render
from devstack.batch_emulator.conformance import (
    IMAGE_PROPERTIES,
    NODE_COUNTS_PROPERTIES,
    NODE_PROPERTIES,
    ODATA_METADATA,
    OPERATION_HEADERS,
    POOL_PROPERTIES,
)
from devstack.batch_emulator.lifecycle import EmulatorRuntime
from devstack.batch_emulator.odata import ODataError, apply_select, parse_filter, parse_select

JSON_TYPE = "application/json;odata=minimalmetadata"  # as the service's recorded answers show it
MAX_RESULTS = 1000


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def with_metadata(request: web.Request, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the service's leading `odata.metadata` for answers of this kind (see conformance.py)."""
    fragment = ODATA_METADATA.get(kind)
    if fragment is None:
        return data
    return {"odata.metadata": f"{base_url(request)}/$metadata#{fragment}", **data}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": JSON_TYPE, **(headers or {})},
    )


def empty_response(status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers or {})


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise errors.invalid_request_body("the request body is empty; a JSON object is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.invalid_request_body(f"the request body is not valid JSON: {exc}") from exc


def _query_filter(
    request: web.Request, known: tuple[str, ...]
) -> tuple[Callable[[dict], bool] | None, str | None]:
    text = request.query.get("$filter")
    if text is None or text == "":
        return None, None
    try:
        return parse_filter(text, known), text
    except ODataError as exc:
        raise errors.invalid_query("$filter", text, str(exc)) from exc


def _query_select(request: web.Request, known: tuple[str, ...]) -> tuple[list[str] | None, str | None]:
    text = request.query.get("$select")
    if text is None or text == "":
        return None, None
    try:
        return parse_select(text, known), text
    except ODataError as exc:
        raise errors.invalid_query("$select", text, str(exc)) from exc


def _max_results(request: web.Request) -> int:
    text = request.query.get("maxresults")
    if text is None:
        return MAX_RESULTS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_RESULTS:
        raise errors.invalid_query("maxresults", text, f"must be an integer from 1 to {MAX_RESULTS}")
    return value


def _skip_token(request: web.Request) -> int:
    text = request.query.get("$skiptoken")
    if text is None:
        return 0
    try:
        return int(text)
    except ValueError as exc:
        raise errors.invalid_query(
            "$skiptoken", text, "is not a continuation token this server issued"
        ) from exc


def paged(
    request: web.Request,
    items: list[tuple[int, Any]],
    known: tuple[str, ...],
    *,
    select: bool = True,
    kind: str = "",
    render: Callable[[Any], dict] | None = None,
) -> web.Response:
    """A list answer: items are (ordering key, JSON), or (ordering key, object) with `render` making its JSON
    (only for the items from the requested page on, so a large listing is not rendered once per page);
    filtered, paged by key, with odata.nextLink carrying the filter, select and page size so the SDK's
    follow-up request (only the link's query) works."""
    predicate, filter_text = _query_filter(request, known)
    names, select_text = _query_select(request, known) if select else (None, None)
    limit = _max_results(request)
    after = _skip_token(request)
    page: list[dict] = []
    last_key, more = after, False
    for key, entry in items:
        if key <= after:
            continue
        item = render(entry) if render is not None else entry
        if predicate is not None and not predicate(item):
            continue
        if len(page) == limit:
            more = True
            break
        page.append(apply_select(item, names))
        last_key = key
    body: dict[str, Any] = with_metadata(request, kind, {"value": page})
    if more:
        params = {
            "api-version": request.query.get("api-version", ""),
            "maxresults": str(limit),
            "$skiptoken": str(last_key),
        }
        if filter_text:
            params["$filter"] = filter_text
        if select_text:
            params["$select"] = select_text
        body["odata.nextLink"] = f"{base_url(request)}{request.path}?{urlencode(params, quote_via=quote)}"
    return json_response(body)


class BatchResponses:
    """One method per operation; routes.py maps method + path to these."""

    def __init__(self, runtime: EmulatorRuntime) -> None:
        self.runtime = runtime
        self.account = runtime.account

    # --- images -------------------------------------------------------------------------------

    async def list_supported_images(self, request: web.Request) -> web.Response:
        items = [(i + 1, image.entry) for i, image in enumerate(self.account.catalog.images)]
        return paged(request, items, IMAGE_PROPERTIES, select=False, kind="list_supported_images")

    # --- pools --------------------------------------------------------------------------------

    async def create_pool(self, request: web.Request) -> web.Response:
        pool = self.runtime.create_pool(await read_json(request))
        url = render.pool_url(base_url(request), pool.id)
        return empty_response(201, _headers("create_pool", url, pool.etag, pool.last_modified))

    async def list_pools(self, request: web.Request) -> web.Response:
        base = base_url(request)
        items = [(p.seq, render.pool_json(p, base)) for p in self.account.pools()]
        return paged(request, items, POOL_PROPERTIES, kind="list_pools")

    async def get_pool(self, request: web.Request) -> web.Response:
        pool = self.account.get_pool(request.match_info["poolId"])
        names, _ = _query_select(request, POOL_PROPERTIES)
        body = apply_select(render.pool_json(pool, base_url(request)), names)
        return json_response(
            with_metadata(request, "get_pool", body),
            headers=_headers("get_pool", "", pool.etag, pool.last_modified),
        )

    async def pool_exists(self, request: web.Request) -> web.Response:
        pool = self.account.find_pool(request.match_info["poolId"])
        if pool is None:
            return empty_response(404)
        return empty_response(200, _headers("pool_exists", "", pool.etag, pool.last_modified))

    async def delete_pool(self, request: web.Request) -> web.Response:
        self.account.delete_pool(request.match_info["poolId"])
        return empty_response(202)

    async def resize_pool(self, request: web.Request) -> web.Response:
        pool = self.account.resize_pool(request.match_info["poolId"], await read_json(request))
        return empty_response(202, _pool_headers(request, "resize_pool", pool))

    async def stop_pool_resize(self, request: web.Request) -> web.Response:
        pool = self.account.stop_resize(request.match_info["poolId"])
        return empty_response(202, _pool_headers(request, "stop_pool_resize", pool))

    async def remove_nodes(self, request: web.Request) -> web.Response:
        pool_id = request.match_info["poolId"]
        self.account.remove_nodes(pool_id, await read_json(request))
        return empty_response(202, _pool_headers(request, "remove_nodes", self.account.get_pool(pool_id)))

    async def list_pool_node_counts(self, request: web.Request) -> web.Response:
        items = [(p.seq, render.node_counts_json(p)) for p in self.account.pools()]
        return paged(request, items, NODE_COUNTS_PROPERTIES, select=False, kind="list_pool_node_counts")

    # --- nodes --------------------------------------------------------------------------------

    async def list_nodes(self, request: web.Request) -> web.Response:
        pool = self.account.get_pool(request.match_info["poolId"])
        base = base_url(request)
        items = [(n.seq, n) for n in list(pool.nodes.values())]

        def node_json(node: Any) -> dict:
            return render.node_json(pool, node, base)

        return paged(request, items, NODE_PROPERTIES, kind="list_nodes", render=node_json)

    async def get_node(self, request: web.Request) -> web.Response:
        pool = self.account.get_pool(request.match_info["poolId"])
        node = self.account.get_node(pool.id, request.match_info["nodeId"])
        names, _ = _query_select(request, NODE_PROPERTIES)
        body = apply_select(render.node_json(pool, node, base_url(request)), names)
        return json_response(
            with_metadata(request, "get_node", body),
            headers=_headers("get_node", "", node.etag, node.last_modified),
        )

    async def get_node_remote_login_settings(self, request: web.Request) -> web.Response:
        pool_id, node_id = request.match_info["poolId"], request.match_info["nodeId"]
        endpoint = self.account.remote_login(pool_id, node_id)
        node = self.account.get_node(pool_id, node_id)
        body = render.remote_login_json(endpoint.public_ip, endpoint.frontend_port)
        return json_response(
            with_metadata(request, "get_node_remote_login_settings", body),
            headers=_headers("get_node_remote_login_settings", "", node.etag, node.last_modified),
        )

    async def get_node_file(self, request: web.Request) -> web.Response:
        path, stat = self._node_file(request)
        headers = _file_headers(request, stat)
        if request.method == "HEAD":
            return empty_response(200, headers)
        return web.Response(
            body=path.read_bytes(), headers={**headers, "Content-Type": "application/octet-stream"}
        )

    def _node_file(self, request: web.Request) -> tuple[Path, Any]:
        pool = self.account.get_pool(request.match_info["poolId"])
        node = self.account.get_node(pool.id, request.match_info["nodeId"])
        relative = request.match_info["filePath"]
        root = self.runtime.layout(pool, node).root.resolve()
        target = (root / relative).resolve()
        if root not in target.parents or not target.is_file():
            raise errors.BatchServiceError(
                404,
                "FileNotFound",
                "The specified file does not exist on the node.",
                [("FilePath", relative)],
            )
        return target, target.stat()

    # --- node users ---------------------------------------------------------------------------

    async def create_node_user(self, request: web.Request) -> web.Response:
        pool_id, node_id = request.match_info["poolId"], request.match_info["nodeId"]
        user = self.account.add_user(pool_id, node_id, await read_json(request))
        url = _user_url(request, pool_id, node_id, user.name)
        return empty_response(201, _headers("create_node_user", url, user.etag, user.last_modified))

    async def replace_node_user(self, request: web.Request) -> web.Response:
        info = request.match_info
        user = self.account.replace_user(
            info["poolId"], info["nodeId"], info["userName"], await read_json(request)
        )
        url = _user_url(request, info["poolId"], info["nodeId"], user.name)
        return empty_response(200, _headers("replace_node_user", url, user.etag, user.last_modified))

    async def delete_node_user(self, request: web.Request) -> web.Response:
        info = request.match_info
        self.account.delete_user(info["poolId"], info["nodeId"], info["userName"])
        return empty_response(200)


def _headers(operation: str, url: str, etag: str, last_modified: datetime) -> dict[str, str]:
    """The response headers the specification gives `operation` (besides request-id)."""
    values = {"DataServiceId": url, "Location": url, "ETag": etag, "Last-Modified": _http_date(last_modified)}
    return {name: values[name] for name in OPERATION_HEADERS[operation]}


def _pool_headers(request: web.Request, operation: str, pool: Any) -> dict[str, str]:
    """Headers of a pool action (resize, stopresize, removenodes): DataServiceId is the action's URL."""
    return _headers(operation, f"{base_url(request)}{request.path}", pool.etag, pool.last_modified)


def _user_url(request: web.Request, pool_id: str, node_id: str, name: str) -> str:
    return f"{render.pool_url(base_url(request), pool_id)}/nodes/{node_id}/users/{quote(name, safe='')}"


def _file_headers(request: web.Request, stat: Any) -> dict[str, str]:
    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
    created = datetime.fromtimestamp(stat.st_ctime, UTC)
    return {
        "Content-Length": str(stat.st_size),
        "Last-Modified": _http_date(modified),
        "ocp-creation-time": _http_date(created),
        "ocp-batch-file-isdirectory": "false",
        "ocp-batch-file-mode": oct(stat.st_mode & 0o777)[2:],
        "ocp-batch-file-url": f"{base_url(request)}{request.path}",
        "ETag": f'"{uuid.uuid5(uuid.NAMESPACE_URL, f"{stat.st_ino}-{stat.st_mtime_ns}")}"',
    }


def _http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)
