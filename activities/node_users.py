"""Node-user activities on Azure Batch: grant users on one node (create, or update a user the app created),
and delete users from one node.

Results are per user, so one bad node or user never loses the others. A throttled or failed call (429, 5xx,
dropped connection) is reported as `transient` with a `retry` input for the orchestration to run again later;
only permanent answers are failures. The app never replaces a user it did not create: `owned` lists the users
this node already has records for. Only this activity ever sees a decrypted password.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df
from azure.batch import models
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError

from activities._common import error_code, is_transient, service_error, settings, transient_error
from provisioning import telemetry
from provisioning.clients import batch_client
from provisioning.durations import parse_timestamp
from provisioning.passwords import PasswordCipher
from provisioning.storage import ConnectionRecords

bp = df.Blueprint()
log = logging.getLogger(__name__)

NODE_GONE = {"NodeNotFound", "PoolNotFound", "PoolBeingDeleted"}
NOT_OWNED = "UserNotCreatedByApp"


class NotOwned(Exception):
    """The node has a user of that name that the app did not create."""


def _password(user: dict[str, Any], cipher: PasswordCipher | None) -> str | None:
    if not user.get("passwordCiphertext"):
        return None
    if cipher is None:
        raise ValueError("a password was sent but the app has no PASSWORD_ENCRYPTION_KEY setting")
    return cipher.decrypt(user["passwordCiphertext"])


def _create(client: Any, pool_id: str, node_id: str, user: dict[str, Any], password: str | None) -> None:
    # No silent retry of the POST inside the SDK: a create whose answer was lost must come back as transient
    # (a `retry` with attempt > 1, where NodeUserExists is the app's own user), never as a NodeUserExists that
    # would look like someone else's user.
    client.create_node_user(
        pool_id,
        node_id,
        models.BatchNodeUserCreateOptions(
            name=user["name"],
            is_admin=bool(user.get("admin")),
            expiry_time=parse_timestamp(user["expiryTime"]),
            password=password,
            ssh_public_key=user.get("sshPublicKey"),
        ),
        retry_total=0,
    )


def _grant(
    client: Any,
    pool_id: str,
    node_id: str,
    user: dict[str, Any],
    password: str | None,
    owned: dict[str, Any],
    retry: bool,
) -> str:
    """Create the user; if it exists and is the app's, make it exactly what the grant asks for."""
    try:
        _create(client, pool_id, node_id, user, password)
        return "created"
    except ResourceExistsError as exc:
        if error_code(exc) != "NodeUserExists":
            raise
    name = user["name"]
    if name not in owned and not retry:
        raise NotOwned(name)
    if name in owned and owned[name] is not None and bool(owned[name]) != bool(user.get("admin")):
        # Batch cannot change the admin flag of a user in place: recreate it.
        try:
            client.delete_node_user(pool_id, node_id, name)
        except ResourceNotFoundError:
            pass
        _create(client, pool_id, node_id, user, password)
        return "recreated"
    client.replace_node_user(
        pool_id,
        node_id,
        name,
        models.BatchNodeUserReplaceOptions(
            password=password,
            expiry_time=parse_timestamp(user["expiryTime"]),
            ssh_public_key=user.get("sshPublicKey"),
        ),
    )
    return "replaced"


def create_node_users(payload: dict) -> dict:
    """Grant every user of the payload on one node; `users` in the result says, per user, what happened."""
    config = settings()
    client = batch_client(config)
    cipher = PasswordCipher(config.password_encryption_key) if config.password_encryption_key else None
    pool_id, node_id = payload["poolId"], payload["nodeId"]
    owned = payload.get("owned") or {}
    attempt = int(payload.get("attempt") or 1)
    # Users an earlier run of this same grant may have created (a crash or a lost answer cut it short).
    attempted = ConnectionRecords(config).claim_creation(
        pool_id, node_id, [u["name"] for u in payload["users"]]
    )
    results: dict[str, dict[str, Any]] = {}
    transient: list[dict[str, Any]] = []
    for user in payload["users"]:
        name = user["name"]
        try:
            again = attempt > 1 or name in attempted
            action = _grant(client, pool_id, node_id, user, _password(user, cipher), owned, again)
            results[name] = {"ok": True, "action": action}
        except NotOwned:
            message = (
                f"node already has a user {name} that this app did not create; it is left alone "
                "(grant another user name)"
            )
            results[name] = {"ok": False, "error": {"code": NOT_OWNED, "message": message}}
        except AzureError as exc:
            if is_transient(exc):
                results[name] = {"ok": False, "transient": True, "error": transient_error(exc)}
                transient.append(user)
                continue
            if not isinstance(exc, HttpResponseError):
                raise
            results[name] = {"ok": False, "error": service_error(exc)}
            if error_code(exc) in NODE_GONE:
                break  # no point trying the other users on a node that is gone
        except ValueError as exc:
            results[name] = {"ok": False, "error": {"code": "PasswordUnavailable", "message": str(exc)}}
    for user in payload["users"]:
        results.setdefault(
            user["name"], {"ok": False, "error": {"code": "NodeGone", "message": "node is gone"}}
        )
    granted = sum(r["ok"] for r in results.values())
    log.info("node %s/%s: %d of %d users granted", pool_id, node_id, granted, len(results))
    result: dict[str, Any] = {"poolId": pool_id, "nodeId": node_id, "users": results}
    if transient:
        result["retry"] = {**payload, "users": transient, "attempt": attempt + 1}
    return result


def delete_node_users(payload: dict) -> dict:
    """Delete users from one node; a user, node or pool that is already gone counts as done. Users whose
    deletion met a transient error are handed back as `retry`, so the orchestration runs the (idempotent)
    deletion of those again later."""
    client = batch_client(settings())
    pool_id, node_id = payload["poolId"], payload["nodeId"]
    results: dict[str, dict[str, Any]] = {}
    transient: list[str] = []
    for name in payload["users"]:
        try:
            client.delete_node_user(pool_id, node_id, name)
            results[name] = {"ok": True, "result": "deleted"}
        except ResourceNotFoundError as exc:  # NodeUserNotFound, NodeNotFound, PoolNotFound
            results[name] = {"ok": True, "result": "gone", "code": error_code(exc)}
        except AzureError as exc:
            if is_transient(exc):
                results[name] = {"ok": False, "transient": True, "error": transient_error(exc)}
                transient.append(name)
                continue
            if not isinstance(exc, HttpResponseError):
                raise
            if error_code(exc) in NODE_GONE:
                results[name] = {"ok": True, "result": "gone", "code": error_code(exc)}
            else:
                results[name] = {"ok": False, "error": service_error(exc)}
    telemetry.log_user_deletions(log, pool_id, node_id, results)
    result: dict[str, Any] = {"poolId": pool_id, "nodeId": node_id, "users": results}
    if transient:
        result["retry"] = {**payload, "users": transient}
    return result


for _activity in (create_node_users, delete_node_users):
    bp.activity_trigger(input_name="payload")(_activity)
