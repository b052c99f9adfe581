"""Node-user activities on Azure Batch: create a request's users on one node, delete users from one node.

Errors are captured per user and per node (the result says what happened), so one bad node never loses the
others; only this Batch activity ever sees a decrypted password.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df
from azure.batch import models
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from activities._common import error_code, service_error, settings
from provisioning import telemetry
from provisioning.clients import batch_client
from provisioning.durations import parse_timestamp
from provisioning.passwords import PasswordCipher

bp = df.Blueprint()
log = logging.getLogger(__name__)

NODE_GONE = {"NodeNotFound", "PoolNotFound", "PoolBeingDeleted"}


def _password(user: dict[str, Any], cipher: PasswordCipher | None) -> str | None:
    if not user.get("passwordCiphertext"):
        return None
    if cipher is None:
        raise ValueError("a password was sent but the app has no PASSWORD_ENCRYPTION_KEY setting")
    return cipher.decrypt(user["passwordCiphertext"])


def _create_or_replace(
    client: Any, pool_id: str, node_id: str, user: dict[str, Any], password: str | None
) -> str:
    expiry = parse_timestamp(user["expiryTime"])
    try:
        client.create_node_user(
            pool_id,
            node_id,
            models.BatchNodeUserCreateOptions(
                name=user["name"],
                is_admin=bool(user.get("admin")),
                expiry_time=expiry,
                password=password,
                ssh_public_key=user.get("sshPublicKey"),
            ),
        )
        return "created"
    except ResourceExistsError as exc:
        if error_code(exc) != "NodeUserExists":
            raise
    # A retry (or a resend) finds the user there already: make it exactly what this request asks for.
    client.replace_node_user(
        pool_id,
        node_id,
        user["name"],
        models.BatchNodeUserReplaceOptions(
            password=password, expiry_time=expiry, ssh_public_key=user.get("sshPublicKey")
        ),
    )
    return "replaced"


def create_node_users(payload: dict) -> dict[str, Any]:
    """Create every user of the request on one node; `users` in the result says, per user, what happened."""
    config = settings()
    client = batch_client(config)
    cipher = PasswordCipher(config.password_encryption_key) if config.password_encryption_key else None
    pool_id, node_id = payload["poolId"], payload["nodeId"]
    results: dict[str, dict[str, Any]] = {}
    for user in payload["users"]:
        try:
            action = _create_or_replace(client, pool_id, node_id, user, _password(user, cipher))
            results[user["name"]] = {"ok": True, "action": action}
        except HttpResponseError as exc:
            results[user["name"]] = {"ok": False, "error": service_error(exc)}
            if error_code(exc) in NODE_GONE:
                break  # no point trying the other users on a node that is gone
        except ValueError as exc:
            results[user["name"]] = {
                "ok": False,
                "error": {"code": "PasswordUnavailable", "message": str(exc)},
            }
    for user in payload["users"]:
        results.setdefault(
            user["name"], {"ok": False, "error": {"code": "NodeGone", "message": "node is gone"}}
        )
    granted = sum(r["ok"] for r in results.values())
    log.info("node %s/%s: %d of %d users granted", pool_id, node_id, granted, len(results))
    return {"nodeId": node_id, "users": results}


def delete_node_users(payload: dict) -> dict[str, Any]:
    """Delete users from one node; a user, node or pool that is already gone counts as done."""
    client = batch_client(settings())
    pool_id, node_id = payload["poolId"], payload["nodeId"]
    results: dict[str, dict[str, Any]] = {}
    for name in payload["users"]:
        try:
            client.delete_node_user(pool_id, node_id, name)
            results[name] = {"ok": True, "result": "deleted"}
        except ResourceNotFoundError as exc:  # NodeUserNotFound, NodeNotFound, PoolNotFound
            results[name] = {"ok": True, "result": "gone", "code": error_code(exc)}
        except HttpResponseError as exc:
            if error_code(exc) in NODE_GONE:
                results[name] = {"ok": True, "result": "gone", "code": error_code(exc)}
            else:
                results[name] = {"ok": False, "error": service_error(exc)}
    telemetry.log_user_deletions(log, pool_id, node_id, results)
    return {"poolId": pool_id, "nodeId": node_id, "users": results}


for _activity in (create_node_users, delete_node_users):
    bp.activity_trigger(input_name="payload")(_activity)
