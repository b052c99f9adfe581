"""Node-user activities on Azure Batch: grant users on a chunk of nodes (with their connection records), and
delete users from one node.

Granting runs on the SDKs' asyncio clients with a bounded number of calls in flight (BATCH_CONCURRENCY Batch
calls and TABLE_WRITERS record transactions per worker process, shared by every chunk it runs; earlier chunks
first, so chunks finish in order and their records are written as each finishes). Results are counts plus
the (node, user) pairs that failed, so one bad node or user never loses the others. A throttled or failed call
(429, 5xx, dropped connection) is reported as transient with a `retry` input for the orchestration to run
again later; only permanent answers are failures.
The app never replaces a user it did not create: a user it may replace has a live record from before. Only
this activity ever sees a decrypted password.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import weakref
from functools import partial
from typing import Any

import azure.durable_functions as df
from azure.batch import models
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError

from activities._common import error_code, is_transient, service_error, settings, transient_error
from provisioning import telemetry
from provisioning.clients import async_batch_client, batch_client
from provisioning.durations import parse_timestamp
from provisioning.grant_work import load_chunk
from provisioning.passwords import PasswordCipher
from provisioning.pool_registry import ManagedPools, ended_grants, public_user
from provisioning.records import ACTIVE as ACTIVE_STATE
from provisioning.records import PENDING, SshConnectionRecord, record_for
from provisioning.storage import ConnectionRecords, GrantRecordWrites

bp = df.Blueprint()
log = logging.getLogger(__name__)

NODE_GONE = {"NodeNotFound", "PoolNotFound", "PoolBeingDeleted"}
NOT_OWNED = "UserNotCreatedByApp"
GRANT_ENDED = "GrantEnded"


class NotOwned(Exception):
    """The node has a user of that name that the app did not create."""


class OrderedLimit:
    """At most `size` holders at a time; waiters are served lowest key first, so the chunk scheduled first
    finishes first instead of every chunk in flight finishing together at the end."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._waiters: list[tuple[tuple, int, asyncio.Future]] = []
        self._seq = itertools.count()

    async def acquire(self, key: tuple) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (key, next(self._seq), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed over just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, OrderedLimit]] = (
    weakref.WeakKeyDictionary()
)
TABLE_WRITERS = 2  # record transactions in flight per worker process (earlier chunks first)


def process_limit(kind: str, size: int) -> OrderedLimit:
    """The worker process's bound on `kind` of calls in flight (one per event loop; replaced when the setting
    changes while nothing holds it)."""
    limits = _limits.setdefault(asyncio.get_running_loop(), {})
    limit = limits.get(kind)
    if limit is None or (limit.size != size and limit._free == limit.size):
        limit = limits[kind] = OrderedLimit(size)
    return limit


async def _in_turn(limit: OrderedLimit, key: tuple, fn: Any, *args: Any) -> Any:
    """Table storage work (a coroutine function, or a blocking one, run in a thread), bounded and in chunk
    order."""
    await limit.acquire(key)
    try:
        if asyncio.iscoroutinefunction(fn):
            return await fn(*args)
        return await asyncio.to_thread(fn, *args)
    finally:
        limit.release()


async def _together(*steps: Any) -> list[Any]:
    """Coroutine functions (without arguments) run at once; their results in order."""
    return list(await asyncio.gather(*(step() for step in steps)))


def _ended_error(name: str, state: str) -> dict[str, str]:
    message = f"the grant of {name} was {state} before this node's turn; {name} was not created on it"
    return {"code": GRANT_ENDED, "message": message}


def _password(user: dict, cipher: PasswordCipher | None) -> str | None:
    if not user.get("passwordCiphertext"):
        return None
    if cipher is None:
        raise ValueError("a password was sent but the app has no PASSWORD_ENCRYPTION_KEY setting")
    return cipher.decrypt(user["passwordCiphertext"])


async def _create(
    client: Any, pool_id: str, node_id: str, user: dict[str, Any], password: str | None
) -> None:
    # No silent retry of the POST inside the SDK: a create whose answer was lost must come back as transient
    # (a `retry` with attempt > 1, where NodeUserExists is the app's own user), never as a NodeUserExists that
    # would look like someone else's user.
    await client.create_node_user(
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


async def _grant(
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
        await _create(client, pool_id, node_id, user, password)
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
            await client.delete_node_user(pool_id, node_id, name)
        except ResourceNotFoundError:
            pass
        await _create(client, pool_id, node_id, user, password)
        return "recreated"
    await client.replace_node_user(
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


async def _grant_one(
    client: Any, limit: OrderedLimit, key: tuple, pool_id: str, node: dict, user: dict, password: Any,
    owned: dict[str, Any], retry: bool,
) -> dict[str, Any]:  # fmt: skip
    """One (node, user): `{"ok", "action"}` or `{"ok": False, "error", "transient"?}`."""
    name = user["name"]
    if isinstance(password, ValueError):
        return {"ok": False, "error": {"code": "PasswordUnavailable", "message": str(password)}}
    await limit.acquire(key)
    try:
        action = await _grant(client, pool_id, node["nodeId"], user, password, owned, retry)
        return {"ok": True, "action": action}
    except NotOwned:
        message = (
            f"node already has a user {name} that this app did not create; it is left alone "
            "(grant another user name)"
        )
        return {"ok": False, "error": {"code": NOT_OWNED, "message": message}}
    except AzureError as exc:
        if is_transient(exc):
            return {"ok": False, "transient": True, "error": transient_error(exc)}
        if not isinstance(exc, HttpResponseError):
            raise
        return {"ok": False, "error": service_error(exc)}
    finally:
        limit.release()


async def _endpoint(client: Any, limit: OrderedLimit, key: tuple, pool_id: str, node: dict) -> dict | None:
    """A node the listing showed without an SSH endpoint: ask for its remote login settings."""
    await limit.acquire(key)
    try:
        login = await client.get_node_remote_login_settings(pool_id, node["nodeId"])
        return {**node, "ip": login.remote_login_ip_address, "port": int(login.remote_login_port)}
    except HttpResponseError as exc:
        if is_transient(exc):
            raise
        return {**node, "noEndpoint": service_error(exc)["message"]}
    finally:
        limit.release()


async def grant_node_users(payload: dict) -> dict:
    """Grant users on a chunk of nodes: `work`, a chunk staged by the poll (every user on each of its nodes,
    provisioning.grant_work), or `nodes`, `{"nodeId", "ip", "port", "state", "users": [names]}`. `pending`
    records first, then every (node, user) on Batch, then `active` records for what was granted. Returns
    counts, the failed and transient (node, user) pairs and, when something was transient, the `retry` input
    (with the nodes and users to try again)."""
    config = settings()
    client = async_batch_client(config)
    limit = process_limit("batch", config.batch_concurrency)
    tables = process_limit("table", TABLE_WRITERS)
    cipher = PasswordCipher(config.password_encryption_key) if config.password_encryption_key else None
    pool_id, request_id = payload["poolId"], payload["requestId"]
    users = {u["name"]: u for u in payload["users"]}
    at = parse_timestamp(payload["grantedAt"])
    attempt = int(payload.get("attempt") or 1)
    order = int(payload.get("order") or 0)
    names = list(users)
    if payload.get("work"):
        loaded = partial(load_chunk, config, pool_id, payload["work"])
        checked = partial(ended_grants, config, pool_id, names)
        staged, ended = await _in_turn(tables, (order,), _together, loaded, checked)
        nodes = [{"nodeId": node_id, "ip": ip, "port": port, "state": state, "users": names}
                 for node_id, ip, port, state in staged]  # fmt: skip
    else:
        nodes = payload["nodes"]
        ended = await _in_turn(tables, (order,), ended_grants, config, pool_id, names)
    # A user whose grant ended meanwhile (revoked while this grant ran) is not created on more nodes.
    stopped = [{"nodeId": n["nodeId"], "user": name, "error": _ended_error(name, ended[name])}
               for n in nodes for name in n["users"] if name in ended]  # fmt: skip
    nodes = [{**n, "users": [name for name in n["users"] if name not in ended]} for n in nodes]

    missing = [n for n in nodes if not n.get("ip")]
    if missing:
        found = await asyncio.gather(*(_endpoint(client, limit, (order, -1), pool_id, n) for n in missing))
        by_id = {n["nodeId"]: n for n in found if n}
        nodes = [by_id.get(n["nodeId"], n) for n in nodes]
    no_endpoint = [{"nodeId": n["nodeId"], "reason": n["noEndpoint"]} for n in nodes if n.get("noEndpoint")]
    nodes = [n for n in nodes if not n.get("noEndpoint")]

    shown = {name: public_user(u) for name, u in users.items()}
    store = ConnectionRecords(config)
    writes = GrantRecordWrites(config, store)

    def record(node: dict, name: str, state: str) -> SshConnectionRecord:
        return record_for(pool_id=pool_id, node_id=node["nodeId"], user=shown[name], endpoint=node,
                          request_id=request_id, state=state, at=at)  # fmt: skip

    async def write_pending() -> tuple[list[SshConnectionRecord], set[str], dict[str, bool]]:
        # built once the chunk has its turn, so chunks waiting for theirs spend no CPU yet
        pending = [record(n, name, PENDING) for n in nodes for name in n["users"]]
        owned_keys = set(await writes.prepare(pending))
        if not owned_keys:
            return pending, owned_keys, {}
        return pending, owned_keys, await asyncio.to_thread(store.admin_flags, pool_id, sorted(owned_keys))

    started = time.perf_counter()
    pending, owned_keys, admin = await _in_turn(tables, (order,), write_pending)
    prepared = time.perf_counter()
    owned: dict[str, dict[str, Any]] = {}
    for r in pending:
        if r.row_key in owned_keys:
            owned.setdefault(r.node_id, {})[r.user] = admin.get(r.row_key)

    passwords: dict[str, Any] = {}
    for name, user in users.items():
        try:
            passwords[name] = _password(user, cipher)
        except ValueError as exc:
            passwords[name] = exc
    pairs = [(n, name) for n in nodes for name in n["users"]]
    calling = time.perf_counter()
    outcomes = await asyncio.gather(*(
        _grant_one(client, limit, (order, i), pool_id, n, users[name], passwords[name],
                   owned.get(n["nodeId"], {}), attempt > 1)
        for i, (n, name) in enumerate(pairs)
    ), return_exceptions=True)  # fmt: skip
    passwords.clear()
    broken = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if broken is not None:
        raise broken  # not a service answer (every call has finished): the orchestration runs the chunk again

    granted = [(n, name) for (n, name), o in zip(pairs, outcomes, strict=True) if o["ok"]]
    foreign = [(n["nodeId"], name) for (n, name), o in zip(pairs, outcomes, strict=True)
               if (o.get("error") or {}).get("code") == NOT_OWNED]  # fmt: skip
    fresh = {r.row_key for r in pending} - owned_keys  # their pending records differ only in state

    async def write_active() -> int:
        return await writes.activate([record(n, name, ACTIVE_STATE) for n, name in granted], fresh)

    called = time.perf_counter()
    written = await _in_turn(tables, (order,), write_active)
    if foreign:
        doomed = [f"{node}|{name}" for node, name in foreign]
        await _in_turn(tables, (order,), store.drop_pending, pool_id, doomed)
        await _in_turn(tables, (order,), ManagedPools(config).note_foreign_users, pool_id, foreign)

    failed, transient, actions = list(stopped), [], {}
    for (n, name), o in zip(pairs, outcomes, strict=True):
        if o["ok"]:
            actions[o["action"]] = actions.get(o["action"], 0) + 1
        elif o.get("transient"):
            transient.append({"nodeId": n["nodeId"], "user": name, "error": o["error"]})
        else:
            failed.append({"nodeId": n["nodeId"], "user": name, "error": o["error"]})
    log.info("pool %s chunk %d: %d of %d (node, user) granted on %d nodes, %d transient; ms: pending "
             "records %.0f, users %.0f, records %.0f", pool_id, order, len(granted), len(pairs), len(nodes),
             len(transient), (prepared - started) * 1000, (called - calling) * 1000,
             (time.perf_counter() - called) * 1000)  # fmt: skip
    result: dict[str, Any] = {
        "nodes": len(nodes),
        "pairs": len(pairs) + len(stopped),
        "granted": len(granted),
        "written": written,
        "actions": actions,
        "failed": failed,
        "transient": transient,
        "noEndpoint": no_endpoint,
    }
    if transient:
        again: dict[str, dict] = {}
        for item in transient:
            node = next(n for n in nodes if n["nodeId"] == item["nodeId"])
            again.setdefault(node["nodeId"], {**node, "users": []})["users"].append(item["user"])
        rest = {key: value for key, value in payload.items() if key != "work"}
        result["retry"] = {**rest, "nodes": list(again.values()), "attempt": attempt + 1}
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


for _activity in (grant_node_users, delete_node_users):
    bp.activity_trigger(input_name="payload")(_activity)
