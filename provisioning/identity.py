"""Orchestration instance ids, derived from the request: a resend never starts a second run."""

from __future__ import annotations

import hashlib

CLEANUP_INSTANCE_ID = "cleanup-expired-access"
RECONCILE_INSTANCE_ID = "reconcile-access"


def digest(text: str, length: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def default_request_id(pool_id: str) -> str:
    """The requestId of a request that gives none: a hash of the (case-insensitive) pool id."""
    return f"pool-{digest(pool_id.lower())}"


def provision_instance_id(request_id: str) -> str:
    """Instance id of the `provision_pool` orchestration for a request id."""
    return f"provision-{request_id}"


def instance_id_for(request: dict) -> str:
    """Instance id for a raw or validated request: from `requestId`, else from a hash of `poolId`."""
    request_id = request.get("requestId") or default_request_id(request["poolId"])
    return provision_instance_id(request_id)


def revoke_instance_id(pool_id: str, user: str) -> str:
    """Instance id of the `revoke_user_access` orchestration for one user on one pool."""
    return f"revoke-{digest(pool_id.lower() + '|' + user)}"


def grant_instance_id(request_id: str) -> str:
    """Instance id of the `grant_pool_access` orchestration for a grant's request id."""
    return f"grant-access-{request_id}"


def delete_pool_instance_id(pool_id: str) -> str:
    """Instance id of the `delete_managed_pool` orchestration for a pool (one deletion at a time)."""
    return f"delete-pool-{digest(pool_id.lower())}"
