"""The Batch REST route table: method and path (as the azure-batch SDK sends them) -> operation name ->
handler."""

from __future__ import annotations

from typing import NamedTuple

from aiohttp import web

from devstack.batch_emulator.responses import BatchResponses


class Route(NamedTuple):
    method: str
    path: str
    operation: str  # the SDK method name; also the name counters and faults use
    handler: str  # BatchResponses method


ROUTES: tuple[Route, ...] = (
    Route("GET", "/supportedimages", "list_supported_images", "list_supported_images"),
    Route("GET", "/nodecounts", "list_pool_node_counts", "list_pool_node_counts"),
    Route("POST", "/pools", "create_pool", "create_pool"),
    Route("GET", "/pools", "list_pools", "list_pools"),
    Route("GET", "/pools/{poolId}", "get_pool", "get_pool"),
    Route("HEAD", "/pools/{poolId}", "pool_exists", "pool_exists"),
    Route("DELETE", "/pools/{poolId}", "delete_pool", "delete_pool"),
    Route("POST", "/pools/{poolId}/resize", "resize_pool", "resize_pool"),
    Route("POST", "/pools/{poolId}/stopresize", "stop_pool_resize", "stop_pool_resize"),
    Route("POST", "/pools/{poolId}/removenodes", "remove_nodes", "remove_nodes"),
    Route("GET", "/pools/{poolId}/nodes", "list_nodes", "list_nodes"),
    Route("GET", "/pools/{poolId}/nodes/{nodeId}", "get_node", "get_node"),
    Route(
        "GET",
        "/pools/{poolId}/nodes/{nodeId}/remoteloginsettings",
        "get_node_remote_login_settings",
        "get_node_remote_login_settings",
    ),
    Route("POST", "/pools/{poolId}/nodes/{nodeId}/users", "create_node_user", "create_node_user"),
    Route("PUT", "/pools/{poolId}/nodes/{nodeId}/users/{userName}", "replace_node_user", "replace_node_user"),
    Route(
        "DELETE", "/pools/{poolId}/nodes/{nodeId}/users/{userName}", "delete_node_user", "delete_node_user"
    ),
    Route("GET", "/pools/{poolId}/nodes/{nodeId}/files/{filePath:.+}", "download_node_file", "get_node_file"),
    Route(
        "HEAD",
        "/pools/{poolId}/nodes/{nodeId}/files/{filePath:.+}",
        "get_node_file_properties",
        "get_node_file",
    ),
)
OPERATIONS = frozenset(route.operation for route in ROUTES)


def add_batch_routes(app: web.Application, responses: BatchResponses) -> None:
    for route in ROUTES:
        handler = getattr(responses, route.handler)
        if route.method == "GET":
            app.router.add_get(route.path, handler, name=route.operation, allow_head=False)
        else:
            app.router.add_route(route.method, route.path, handler, name=route.operation)
