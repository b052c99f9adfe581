"""Pool activities on Azure Batch: pick the image, create the pool, poll it (staging the nodes that became
ready for granting), list its nodes and SSH endpoints, delete it. Each answers `{"transient": error}` when
Batch throttled, failed on its side or the connection dropped (activities/_common.transient_answers), and is
safe to run again after such a fault struck after Batch acted: PoolExists with the same spec is success, a
pool already gone or going is deleted, a staging writes the same rows again."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
from azure.batch import models
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from activities._common import (
    error_code,
    is_client_error,
    service_error,
    settings,
    transient_answers,
)
from provisioning.clients import batch_client
from provisioning.grant_work import GrantWork, batch_key
from provisioning.images import ImageSelectionError, select_image
from provisioning.nodes import NodeCategory, classify_node_state, missing_pool_snapshot, summarize_pool
from provisioning.pool_spec import (
    SSH_BACKEND_PORT,
    build_pool_spec,
    existing_pool_difference,
    ssh_access_problem,
)

bp = df.Blueprint()
log = logging.getLogger(__name__)

# what a poll reads of each node: its state, why it failed (start task, errors) and its SSH endpoint
NODE_FIELDS = ["id", "state", "startTaskInfo", "errors", "endpointConfiguration"]


def select_pool_image(payload: dict) -> dict:
    """Resolve the request's image against the live `list_supported_images` answer."""
    catalog = [image.as_dict() for image in batch_client(settings()).list_supported_images()]
    try:
        image = select_image(catalog, payload["image"], datetime.now(UTC))
    except ImageSelectionError as exc:
        return {"ok": False, "error": {"code": exc.code, "message": str(exc)}}
    log.info("image for pool %s: %s", payload.get("poolId"), image["description"])
    return {"ok": True, "image": image}


def create_pool(payload: dict) -> dict:
    """Create the pool; an existing pool with the same spec is success, one with another spec is an error."""
    request, image = payload["request"], payload["image"]
    client = batch_client(settings())
    spec = build_pool_spec(request, image)
    try:
        client.create_pool(models.BatchPoolCreateOptions(spec))
        log.info("created pool %s", request["poolId"])
        return {"ok": True, "created": True}
    except ResourceExistsError as exc:
        if error_code(exc) != "PoolExists":
            return {"ok": False, "error": service_error(exc)}
    except HttpResponseError as exc:
        if not is_client_error(exc):
            raise  # 5xx after the SDK's own retries: let the orchestration retry the activity
        return {"ok": False, "error": service_error(exc)}
    try:
        existing = client.get_pool(request["poolId"]).as_dict()
    except ResourceNotFoundError:  # deleted between our create and get: let the retry create it
        raise RuntimeError(f"pool {request['poolId']} vanished while checking its spec; retry") from None
    if (existing.get("state") or "").lower() == "deleting":
        return {"ok": False, "error": {"code": "PoolBeingDeleted", "message": "the pool is being deleted"}}
    difference = existing_pool_difference(existing, request)
    if difference:
        message = f"pool {request['poolId']} already exists with a different specification: {difference}"
        return {"ok": False, "error": {"code": "PoolExistsWithDifferentSpec", "message": message}}
    log.info("pool %s already exists with the same spec", request["poolId"])
    return {"ok": True, "created": False}


def _nodes(client: Any, pool_id: str) -> list[dict[str, Any]]:
    return [n.as_dict() for n in client.list_nodes(pool_id, select=NODE_FIELDS)]


def poll_pool(payload: dict) -> dict:
    """A compact snapshot of the pool and its nodes (see provisioning.nodes.summarize_pool). Given `stage`
    (`{"run", "batch"}`), the ready nodes that no earlier staging of the run handed on are staged for granting
    with their SSH endpoints (provisioning.grant_work), and `staged` says where: the orchestration sees counts
    and that reference, never the node list. `listPending`: nodes still on their way count as problems."""
    config = settings()
    client = batch_client(config)
    pool_id = payload["poolId"]
    try:
        # The pool before its nodes, never at the same time: a pool read as steady after a listing taken while
        # it was still allocating would look steady with nodes missing.
        pool = client.get_pool(pool_id).as_dict()
        nodes = _nodes(client, pool_id)
    except ResourceNotFoundError:
        return missing_pool_snapshot()
    snapshot = summarize_pool(pool, nodes, list_pending=bool(payload.get("listPending")))
    stage = payload.get("stage")
    ready = [n for n in nodes if classify_node_state(n.get("state")) is NodeCategory.READY]
    if stage and ready:
        work = GrantWork(config)
        batch = batch_key(stage["run"], stage["batch"])
        done = work.staged_nodes(pool_id, stage["run"], except_batch=batch) if stage["batch"] else set()
        fresh = [[n["id"], *(_endpoint_from_node(n) or (None, None)), (n.get("state") or "").lower()]
                 for n in ready if n["id"] not in done]  # fmt: skip
        if fresh:
            snapshot["staged"] = work.stage(pool_id, batch, fresh)
    return snapshot


def delete_pool(payload: dict) -> dict:
    """Start deleting the pool (asynchronous in Batch); a pool already gone or going is fine."""
    client = batch_client(settings())
    try:
        client.begin_delete_pool(payload["poolId"], polling_interval=1)
    except ResourceNotFoundError:
        return {"deleted": False, "alreadyGone": True}
    except ResourceExistsError as exc:
        if error_code(exc) != "PoolBeingDeleted":
            raise
    log.info("deleting pool %s", payload["poolId"])
    return {"deleted": True, "alreadyGone": False}


def inspect_pool(payload: dict) -> dict:
    """Can access be granted on this pool? It must exist, not be deleting, run Linux and have an inbound NAT
    pool for SSH (port 22). `status` is the HTTP answer a refusal deserves (404 or 409)."""
    client = batch_client(settings())
    pool_id = payload["poolId"]
    try:
        pool = client.get_pool(pool_id).as_dict()
    except ResourceNotFoundError:
        message = f"the Batch account has no pool {pool_id}"
        return {"ok": False, "status": 404, "error": {"code": "PoolNotFound", "message": message}}
    problem = ssh_access_problem(pool)
    if problem:
        return {"ok": False, "status": 409, "error": problem}
    return {"ok": True, "poolId": pool.get("id") or pool_id}


def survey_pool(payload: dict) -> dict:
    """Every node of the pool with its state, category and SSH endpoint (one listing, no per-node call)."""
    client = batch_client(settings())
    pool_id = payload["poolId"]
    try:
        pool = client.get_pool(pool_id, select=["id", "state"]).as_dict()
        nodes = _nodes(client, pool_id)
    except ResourceNotFoundError:
        return {"exists": False, "poolState": "missing", "nodes": {}}
    survey = {}
    for node in nodes:
        state = (node.get("state") or "").lower()
        found = _endpoint_from_node(node)
        survey[node["id"]] = {
            "state": state,
            "category": classify_node_state(state).value,
            "ip": found[0] if found else None,
            "port": found[1] if found else None,
        }
    return {"exists": True, "poolState": (pool.get("state") or "").lower(), "nodes": survey}


def _endpoint_from_node(node: dict) -> tuple[str, int] | None:
    for endpoint in (node.get("endpointConfiguration") or {}).get("inboundEndpoints") or []:
        if endpoint.get("backendPort") == SSH_BACKEND_PORT and endpoint.get("publicIPAddress"):
            return endpoint["publicIPAddress"], int(endpoint["frontendPort"])
    return None


for _activity in (
    select_pool_image,
    create_pool,
    poll_pool,
    delete_pool,
    inspect_pool,
    survey_pool,
):
    bp.activity_trigger(input_name="payload")(transient_answers(_activity))
