"""Table and queue access (SDK adapters): connection records, request status entries, outgoing events; and
the grant's own record writes on the SDK's asyncio Table client (GrantRecordWrites)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from provisioning.clients import async_table_client, queue_client, table_client
from provisioning.records import ACTIVE, LIVE_STATES, PENDING, SshConnectionRecord, partition_key
from provisioning.settings import Settings

MAX_TRANSACTION = 100  # Table storage's limit per transaction (one partition)
INVALID_PARTITION = "_invalid-requests"

_ensured: set[tuple[str, str]] = set()
_ensure_lock = threading.Lock()


def _ensure_table(client: TableClient) -> TableClient:
    key = (client.url, client.table_name)
    if key not in _ensured:
        with _ensure_lock:
            try:
                client.create_table()
            except ResourceExistsError:
                pass
            _ensured.add(key)
    return client


def chunks(items: list[Any], size: int = MAX_TRANSACTION) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_LIVE = "(State eq 'pending' or State eq 'active')"


class ConnectionRecords:
    """The SSH connection records table (PartitionKey = pool id in lower case, RowKey = `node|user`)."""

    def __init__(self, settings: Settings) -> None:
        self._table = _ensure_table(table_client(settings, settings.connections_table))

    def upsert(self, records: list[SshConnectionRecord]) -> int:
        """Write records, replacing earlier versions, in transactions of at most 100 per partition."""
        by_partition: dict[str, list[SshConnectionRecord]] = defaultdict(list)
        for record in records:
            by_partition[record.partition_key].append(record)
        for items in by_partition.values():
            for batch in chunks(items):
                self._table.submit_transaction(
                    [("upsert", r.to_entity(), {"mode": UpdateMode.REPLACE}) for r in batch]
                )
        return len(records)

    def prepare_over_existing(self, batch: list[SshConnectionRecord]) -> list[str]:
        """GrantRecordWrites.prepare for up to 100 records of one pool of which some exist: reads their
        states, writes the ones without a live record, returns the RowKeys of those with one."""
        existing = self._states(batch[0].pool_id, [r.row_key for r in batch])
        self.upsert([r for r in batch if existing.get(r.row_key) not in LIVE_STATES])
        return [r.row_key for r in batch if existing.get(r.row_key) in LIVE_STATES]

    def drop_pending(self, pool_id: str, row_keys: list[str]) -> int:
        """Delete `pending` records whose user turned out not to be the app's to create."""
        pk, wanted = partition_key(pool_id), set(row_keys)
        if not wanted:
            return 0
        states = self._states(pool_id, sorted(wanted))
        doomed = [rk for rk, state in states.items() if rk in wanted and state == PENDING]
        for batch in chunks(doomed):
            self._table.submit_transaction([("delete", {"PartitionKey": pk, "RowKey": rk}) for rk in batch])
        return len(doomed)

    def admin_flags(self, pool_id: str, row_keys: list[str]) -> dict[str, bool]:
        """RowKey -> IsAdmin of the given records (read over the RowKey range that spans them)."""
        if not row_keys:
            return {}
        wanted = set(row_keys)
        entities = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
            parameters={"pk": partition_key(pool_id), "low": min(row_keys), "high": max(row_keys)},
            select=["RowKey", "IsAdmin"],
        )
        return {e["RowKey"]: bool(e.get("IsAdmin")) for e in entities if e["RowKey"] in wanted}

    def active_for_request(self, pool_id: str, request_id: str, limit: int) -> list[SshConnectionRecord]:
        """The first `limit` active records `request_id` wrote on the pool, in RowKey order (by node, then
        user), read a page of `limit` at a time: never the whole pool for a sample."""
        entities = self._table.query_entities(
            "PartitionKey eq @pk and RequestId eq @request and State eq 'active'",
            parameters={"pk": partition_key(pool_id), "request": request_id},
            results_per_page=limit,
        )
        return [SshConnectionRecord.from_entity(e) for e in islice(entities, limit)]

    def _states(self, pool_id: str, row_keys: list[str] | None = None) -> dict[str, str]:
        """RowKey -> State of the pool's records; with `row_keys`, only the RowKey range that spans them (a
        chunk of nodes reads its own records, not the whole pool's)."""
        query, parameters = "PartitionKey eq @pk", {"pk": partition_key(pool_id)}
        if row_keys:
            query += " and RowKey ge @low and RowKey le @high"
            parameters.update(low=min(row_keys), high=max(row_keys))
        entities = self._table.query_entities(query, parameters=parameters, select=["RowKey", "State"])
        return {e["RowKey"]: e.get("State", ACTIVE) for e in entities}

    def for_pool(self, pool_id: str) -> list[SshConnectionRecord]:
        entities = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": partition_key(pool_id)}
        )
        return sorted(
            (SshConnectionRecord.from_entity(e) for e in entities), key=lambda r: (r.user, r.node_id)
        )

    def live_for_pool(self, pool_id: str) -> list[SshConnectionRecord]:
        return [r for r in self.for_pool(pool_id) if r.state in LIVE_STATES]

    def active_for_user(self, user: str) -> list[SshConnectionRecord]:
        """Every active record of one user, across pools."""
        entities = self._table.query_entities(
            "UserName eq @user and State eq @state", parameters={"user": user, "state": ACTIVE}
        )
        return sorted(
            (SshConnectionRecord.from_entity(e) for e in entities), key=lambda r: (r.pool_id, r.node_id)
        )

    def expired(self, now: datetime, limit: int) -> list[SshConnectionRecord]:
        """Live records whose expiry has passed, across all pools (at most `limit`)."""
        entities = self._table.query_entities(
            f"{_LIVE} and ExpiresAt le @now",
            parameters={"now": now},
            results_per_page=min(limit, 1000),
        )
        found = []
        for entity in entities:
            found.append(SshConnectionRecord.from_entity(entity))
            if len(found) >= limit:
                break
        return found

    def mark(self, keys: list[tuple[str, ...]], state: str, at: datetime) -> int:
        """Set `state` on the given records still live; returns how many changed. A key is (PartitionKey,
        RowKey) or (PartitionKey, RowKey, ETag): with an ETag, the record is marked only if it has not changed
        since it was read with that ETag. A record written again meanwhile (a grant that created its user
        after the user was deleted) stays live, so the user is deleted again by the next pass, never left on a
        node behind an ended record."""
        wanted: dict[str, dict[str, str | None]] = defaultdict(dict)
        for pk, rk, *version in keys:
            wanted[pk][rk] = version[0] if version else None
        changed = 0
        for pk, rows in wanted.items():
            live = self._table.query_entities(  # the live records in the RowKey range of the wanted ones
                f"PartitionKey eq @pk and RowKey ge @low and RowKey le @high and {_LIVE}",
                parameters={"pk": pk, "low": min(rows), "high": max(rows)},
                select=["RowKey"],
            )
            unchanged = [
                e for e in live
                if e["RowKey"] in rows and rows[e["RowKey"]] in (None, e.metadata["etag"])
            ]  # fmt: skip
            changed += self._set_state(pk, unchanged, state, at)
        return changed

    def mark_pool(self, pool_id: str, state: str, at: datetime) -> int:
        """Set `state` on every live record of a pool (the pool was deleted or vanished)."""
        pk = partition_key(pool_id)
        live = self._table.query_entities(
            f"PartitionKey eq @pk and {_LIVE}", parameters={"pk": pk}, select=["RowKey"]
        )
        return self._set_state(pk, list(live), state, at)

    def refresh_node_states(self, pool_id: str, node_states: dict[str, str]) -> int:
        """Write each node's current state into its live records where it changed."""
        pk = partition_key(pool_id)
        live = self._table.query_entities(f"PartitionKey eq @pk and {_LIVE}", parameters={"pk": pk})
        changed = [
            e for e in live if e["NodeId"] in node_states and e.get("NodeState") != node_states[e["NodeId"]]
        ]
        for batch in chunks(changed):
            self._table.submit_transaction(
                [
                    (
                        "update",
                        {"PartitionKey": pk, "RowKey": e["RowKey"], "NodeState": node_states[e["NodeId"]]},
                        {"mode": UpdateMode.MERGE},
                    )
                    for e in batch
                ]
            )
        return len(changed)

    def _set_state(self, pk: str, entities: list[Any], state: str, at: datetime) -> int:
        """Merge the new state into entities, guarded by their etags (a concurrent change fails the batch)."""
        for batch in chunks(entities):
            self._table.submit_transaction(
                [
                    (
                        "update",
                        {"PartitionKey": pk, "RowKey": e["RowKey"], "State": state, "StateChangedAt": at},
                        {
                            "mode": UpdateMode.MERGE,
                            "etag": e.metadata["etag"],
                            "match_condition": MatchConditions.IfNotModified,
                        },
                    )
                    for e in batch
                ]
            )
        return len(entities)


class GrantRecordWrites:
    """The grant's two writes of its records (`pending` before the users are created, `active` after) on the
    SDK's asyncio Table client: in the usual case one insert-only transaction and one state-only merge per
    100 records, on the event loop, with no read and no thread. Whatever is unusual (a record already there,
    one gone meanwhile) is left to ConnectionRecords, in a thread. Records of one pool (one partition)."""

    def __init__(self, settings: Settings, records: ConnectionRecords) -> None:
        self._table = async_table_client(settings, settings.connections_table)
        self._records = records

    async def prepare(self, records: list[SshConnectionRecord]) -> list[str]:
        """Write `pending` records for the (node, user) pairs about to be created, before they are created.

        Pairs that already have a live (pending or active) record keep it: the app created (or was creating)
        that user, so it may replace it. Returns the RowKeys of those pairs."""
        owned: list[str] = []
        for batch in chunks(records):
            try:  # the usual case, nodes the app has no record of: one insert-only transaction, no read
                await self._table.submit_transaction([("create", r.to_entity()) for r in batch])
            except TableTransactionError:  # some exist (an earlier grant, or this one again): none written
                owned += await asyncio.to_thread(self._records.prepare_over_existing, batch)
        return sorted(owned)

    async def activate(self, records: list[SshConnectionRecord], written_pending: set[str]) -> int:
        """Make records `active`: those whose `pending` record this grant has just written (`written_pending`,
        identical but for the state) by merging the state alone, the others by writing them whole."""
        for batch in chunks(records):
            operations = [
                ("update", {"PartitionKey": r.partition_key, "RowKey": r.row_key, "State": r.state},
                 {"mode": UpdateMode.MERGE})
                if r.row_key in written_pending
                else ("upsert", r.to_entity(), {"mode": UpdateMode.REPLACE})
                for r in batch
            ]  # fmt: skip
            try:
                await self._table.submit_transaction(operations)
            except TableTransactionError:  # a pending record vanished meanwhile: write them whole
                await asyncio.to_thread(self._records.upsert, batch)
        return len(records)


class RequestEntries:
    """Status entries of received requests (accepted or rejected), so a sender can find what became of one."""

    def __init__(self, settings: Settings) -> None:
        self._table = _ensure_table(table_client(settings, settings.requests_table))

    def put(
        self,
        *,
        pool_id: str | None,
        request_id: str,
        state: str,
        source: str,
        instance_id: str | None = None,
        errors: list[dict[str, str]] | None = None,
        warnings: list[dict[str, str]] | None = None,
        fingerprint: str | None = None,
        received_at: datetime | None = None,
        kind: str = "create-pool",
    ) -> dict[str, Any]:
        entity = {
            "PartitionKey": partition_key(pool_id) if pool_id else INVALID_PARTITION,
            "RowKey": request_id,
            "PoolId": pool_id or "",
            "RequestId": request_id,
            "State": state,
            "Source": source,
            "InstanceId": instance_id or "",
            "Errors": json.dumps(errors or []),
            "Warnings": json.dumps(warnings or []),
            "Fingerprint": fingerprint or "",
            "ReceivedAt": received_at or datetime.now(UTC),
            "Kind": kind,
        }
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        return self._to_json(entity)

    def latest_for_pool(self, pool_id: str) -> dict[str, Any] | None:
        """The newest accepted request for the pool (with `latestRejection` when a rejection came after it),
        else the newest rejection."""
        entities = sorted(
            self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition_key(pool_id)}),
            key=lambda e: e["ReceivedAt"],
        )
        if not entities:
            return None
        accepted = [e for e in entities if e.get("State") != "rejected"]
        if not accepted:
            return self._to_json(entities[-1])
        entry = self._to_json(accepted[-1])
        if entities[-1] is not accepted[-1]:
            entry["latestRejection"] = self._to_json(entities[-1])
        return entry

    def get(self, pool_id: str | None, request_id: str) -> dict[str, Any] | None:
        try:
            entity = self._table.get_entity(
                partition_key(pool_id) if pool_id else INVALID_PARTITION, request_id
            )
        except ResourceNotFoundError:
            return None
        return self._to_json(entity)

    @staticmethod
    def _to_json(entity: dict[str, Any]) -> dict[str, Any]:
        received = entity.get("ReceivedAt")
        return {
            "poolId": entity.get("PoolId") or None,
            "requestId": entity["RowKey"],
            "state": entity.get("State"),
            "source": entity.get("Source"),
            "instanceId": entity.get("InstanceId") or None,
            "errors": json.loads(entity.get("Errors") or "[]"),
            "warnings": json.loads(entity.get("Warnings") or "[]"),
            "fingerprint": entity.get("Fingerprint") or None,
            "kind": entity.get("Kind") or "create-pool",
            "receivedAt": received.astimezone(UTC).isoformat()
            if isinstance(received, datetime)
            else received,
        }


class EventPublisher:
    """Publishes JSON events (base64 text messages) on the events queue, creating the queue when missing."""

    _created: set[tuple[str, str]] = set()

    def __init__(self, settings: Settings) -> None:
        self._queue = queue_client(settings, settings.events_queue)

    def publish(self, event: dict[str, Any]) -> None:
        key = (self._queue.url, self._queue.queue_name)
        if key not in self._created:
            try:
                self._queue.create_queue()
            except ResourceExistsError:
                pass
            self._created.add(key)
        self._queue.send_message(json.dumps(event, sort_keys=True))
