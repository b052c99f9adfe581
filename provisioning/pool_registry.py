"""The managed pools table (SDK adapter): one entry per pool the app created or granted access on, and one
per (pool, user) grant it keeps applying to the pool's nodes (reconcile reads them).

A grant holds what is needed to create the user on a node that joins later: name, admin flag, expiry, public
key and its fingerprint, and for password users only the password's ciphertext (PASSWORD_ENCRYPTION_KEY).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from provisioning.clients import async_table_client, table_client
from provisioning.durations import format_timestamp, parse_timestamp
from provisioning.records import partition_key
from provisioning.settings import Settings
from provisioning.storage import _ensure_table, chunks

POOL_ROW = "pool"
GRANT_PREFIX = "grant|"
MANAGED, DELETING, DELETED, GONE = "managed", "deleting", "deleted", "gone"
GRANT_ACTIVE, GRANT_REVOKED, GRANT_ENDED = "active", "revoked", "ended"


GRANT_ROWS = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"  # a pool's grant rows


def _grant_rows(pool_id: str) -> dict[str, str]:
    """GRANT_ROWS' parameters: the pool's partition, RowKeys from `grant|` up to (not with) `grant}`."""
    return {"pk": partition_key(pool_id), "lo": GRANT_PREFIX, "hi": GRANT_PREFIX[:-1] + "}"}


def _iso(value: Any) -> str | None:
    return format_timestamp(value) if isinstance(value, datetime) else (value or None)


class ManagedPools:
    """Pool entries (RowKey `pool`) and grant entries (RowKey `grant|{user}`), partitioned by pool id. (The
    same partitions hold the staged grant work of running requests, RowKey `work|...`: grant_work.py.)"""

    def __init__(self, settings: Settings) -> None:
        self._table = _ensure_table(table_client(settings, settings.pools_table))

    # ---- pools ----------------------------------------------------------------------------------------

    def register(
        self,
        pool_id: str,
        *,
        created_by_app: bool,
        request_id: str,
        delete_after: str | None = None,
        busy_until: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Start managing a pool (or note another request on it). Once created by the app, always so.
        `busy_until`: a request is working on the pool until then at the latest (reconcile stays away)."""
        at = at or datetime.now(UTC)
        current = self.get(pool_id)
        if current is not None and current["state"] in (DELETED, GONE):
            # A new pool under an old id: nothing of the old one carries over.
            for grant in self.grants(pool_id):
                self.set_grant_state(pool_id, grant["name"], GRANT_ENDED, at)
            current = None
        entity: dict[str, Any] = {
            "PartitionKey": partition_key(pool_id),
            "RowKey": POOL_ROW,
            "PoolId": pool_id,
            "CreatedByApp": bool(created_by_app or (current or {}).get("createdByApp")),
            "State": MANAGED,
            "LatestRequestId": request_id,
            "UpdatedAt": at,
        }
        if current is None:
            entity["ManagedSince"] = at
        if delete_after:
            entity["DeleteAfter"] = parse_timestamp(delete_after)
        if busy_until:
            entity["BusyUntil"] = parse_timestamp(busy_until)
        self._table.upsert_entity(entity, mode=UpdateMode.MERGE)
        return self.get(pool_id) or {}

    def get(self, pool_id: str) -> dict[str, Any] | None:
        try:
            entity = self._table.get_entity(partition_key(pool_id), POOL_ROW)
        except ResourceNotFoundError:
            return None
        return self._pool_json(entity)

    def all(self) -> list[dict[str, Any]]:
        entities = self._table.query_entities("RowKey eq @row", parameters={"row": POOL_ROW})
        return sorted((self._pool_json(e) for e in entities), key=lambda p: p["poolId"].lower())

    def set_state(self, pool_id: str, state: str, at: datetime, **fields: Any) -> None:
        entity = {"PartitionKey": partition_key(pool_id), "RowKey": POOL_ROW, "State": state, "UpdatedAt": at}
        if "nodeCounts" in fields:
            entity["NodeCounts"] = json.dumps(fields["nodeCounts"], sort_keys=True)
        self._table.upsert_entity(entity, mode=UpdateMode.MERGE)

    def set_busy_until(self, pool_id: str, when: datetime) -> None:
        self._table.upsert_entity(
            {"PartitionKey": partition_key(pool_id), "RowKey": POOL_ROW, "BusyUntil": when},
            mode=UpdateMode.MERGE,
        )

    def set_node_counts(self, pool_id: str, counts: dict[str, int]) -> None:
        self._table.upsert_entity(
            {
                "PartitionKey": partition_key(pool_id),
                "RowKey": POOL_ROW,
                "NodeCounts": json.dumps(counts, sort_keys=True),
            },
            mode=UpdateMode.MERGE,
        )

    @staticmethod
    def _pool_json(entity: dict[str, Any]) -> dict[str, Any]:
        return {
            "poolId": entity.get("PoolId"),
            "createdByApp": bool(entity.get("CreatedByApp")),
            "state": entity.get("State", MANAGED),
            "deleteAfter": _iso(entity.get("DeleteAfter")),
            "busyUntil": _iso(entity.get("BusyUntil")),
            "managedSince": _iso(entity.get("ManagedSince")),
            "latestRequestId": entity.get("LatestRequestId") or None,
            "nodeCounts": json.loads(entity.get("NodeCounts") or "null"),
            "updatedAt": _iso(entity.get("UpdatedAt")),
        }

    # ---- grants ---------------------------------------------------------------------------------------

    def save_grants(self, pool_id: str, users: list[dict[str, Any]], request_id: str, at: datetime) -> int:
        """Upsert the grant of each user (a later grant of the same user replaces key, expiry, admin)."""
        pk = partition_key(pool_id)
        entities = [
            {
                "PartitionKey": pk,
                "RowKey": GRANT_PREFIX + user["name"],
                "PoolId": pool_id,
                "UserName": user["name"],
                "Admin": bool(user.get("admin")),
                "ExpiresAt": parse_timestamp(user["expiryTime"]),
                "SshPublicKey": user.get("sshPublicKey") or "",
                "KeyFingerprint": user.get("keyFingerprint") or "",
                "KeyType": user.get("keyType") or "",
                "HasPassword": bool(user.get("hasPassword")),
                "PasswordCiphertext": user.get("passwordCiphertext") or "",
                "RequestId": request_id,
                "State": GRANT_ACTIVE,
                "UpdatedAt": at,
            }
            for user in users
        ]
        for batch in chunks(entities):
            self._table.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in batch])
        return len(entities)

    def grants(self, pool_id: str, *, active_at: datetime | None = None) -> list[dict[str, Any]]:
        """The pool's grants as user dicts (the orchestration's user shape); with `active_at`, only those
        still active and not expired then."""
        entities = self._table.query_entities(GRANT_ROWS, parameters=_grant_rows(pool_id))
        users = []
        for e in entities:
            expires = e["ExpiresAt"]
            if active_at is not None and (e.get("State") != GRANT_ACTIVE or expires <= active_at):
                continue
            user: dict[str, Any] = {
                "name": e["UserName"],
                "admin": bool(e.get("Admin")),
                "expiryTime": format_timestamp(expires),
                "state": e.get("State", GRANT_ACTIVE),
                "requestId": e.get("RequestId") or None,
            }
            if e.get("SshPublicKey"):
                user.update(
                    sshPublicKey=e["SshPublicKey"], keyFingerprint=e.get("KeyFingerprint") or "",
                    keyType=e.get("KeyType") or "",
                )  # fmt: skip
            if e.get("HasPassword"):
                user.update(hasPassword=True, passwordCiphertext=e.get("PasswordCiphertext") or "")
            if e.get("ForeignNodes"):
                user["foreignNodes"] = json.loads(e["ForeignNodes"])
            users.append(user)
        return sorted(users, key=lambda u: u["name"])

    def note_foreign_users(self, pool_id: str, pairs: list[tuple[str, str]]) -> None:
        """Remember the nodes where a user of a grant's name exists that the app did not create, so reconcile
        leaves them alone instead of trying again every period."""
        by_user: dict[str, set[str]] = {}
        for node_id, user in pairs:
            by_user.setdefault(user, set()).add(node_id)
        for user, nodes in by_user.items():
            try:
                known = self._table.get_entity(partition_key(pool_id), GRANT_PREFIX + user)
            except ResourceNotFoundError:
                continue
            merged = sorted(set(json.loads(known.get("ForeignNodes") or "[]")) | nodes)
            self._table.update_entity(
                {"PartitionKey": partition_key(pool_id), "RowKey": GRANT_PREFIX + user,
                 "ForeignNodes": json.dumps(merged)},
                mode=UpdateMode.MERGE,
            )  # fmt: skip

    def set_grant_state(self, pool_id: str, user: str, state: str, at: datetime) -> bool:
        """Mark one user's grant (revoked); False when the app never granted that user on that pool."""
        try:
            self._table.update_entity(
                {
                    "PartitionKey": partition_key(pool_id),
                    "RowKey": GRANT_PREFIX + user,
                    "State": state,
                    "UpdatedAt": at,
                },
                mode=UpdateMode.MERGE,
            )
        except ResourceNotFoundError:
            return False
        return True


async def ended_grants(settings: Settings, pool_id: str, names: list[str]) -> dict[str, str]:
    """Which of a grant's users no node should get any more: name -> the state of its grant row, when that
    is no longer active (`revoked`: revoke marks the grant first, so a grant still running stops creating
    the user). A user with no grant row is not ended. On the SDK's asyncio Table client, for the grant
    activity's event loop."""
    ended: dict[str, str] = {}
    rows = async_table_client(settings, settings.pools_table).query_entities(
        GRANT_ROWS, parameters=_grant_rows(pool_id), select=["UserName", "State"]
    )
    try:
        async for row in rows:
            state = row.get("State") or GRANT_ACTIVE
            if row.get("UserName") in names and state != GRANT_ACTIVE:
                ended[row["UserName"]] = state
    except ResourceNotFoundError:  # no managed pools table yet: no grant row at all
        pass
    return ended


def public_user(user: dict[str, Any]) -> dict[str, Any]:
    """A grant without its password ciphertext and key text: what records, views and events may show."""
    return {k: v for k, v in user.items() if k not in ("passwordCiphertext", "sshPublicKey")}
