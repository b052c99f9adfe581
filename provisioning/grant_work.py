"""Staged grant work (a claim check): the nodes a run is about to give users to, written to the managed pools
table in chunks of CHUNK_NODES before any of them is granted, so that an orchestration's history carries a
reference to the work (`run|batch`, the number of chunks) and never the node list itself. A chunk activity
reads its own row (on the SDK's asyncio Table client: `load_chunk`). Histories, and with them replay time,
stay the same size however many nodes the pool has.

Rows: PartitionKey = the pool's records partition, RowKey = `work|{run}|{batch}|{chunk:05d}`, `Nodes` =
JSON `[[nodeId, ip, port, state], ...]`. A run's rows are deleted when the run is done with them; a
re-run of a staging writes the same rows again.
"""

from __future__ import annotations

import json
from typing import Any

from azure.data.tables import UpdateMode

from provisioning.clients import async_table_client, table_client
from provisioning.records import partition_key
from provisioning.settings import Settings
from provisioning.storage import _ensure_table, chunks

CHUNK_NODES = 50  # nodes per grant_node_users activity
WORK_PREFIX = "work|"


def run_prefix(run: str) -> str:
    """The RowKey prefix of every row a run staged (`run` is the orchestration instance id)."""
    return f"{WORK_PREFIX}{run}|"


def batch_key(run: str, batch: int) -> str:
    """The key of a run's `batch`-th staging (the orchestration counts them)."""
    return f"{run}|{batch}"


def batch_prefix(batch: str) -> str:
    """The RowKey prefix of the chunks of one staging (a `batch_key`)."""
    return f"{WORK_PREFIX}{batch}|"


def chunk_key(batch: str, chunk: int) -> str:
    return f"{batch_prefix(batch)}{chunk:05d}"


async def load_chunk(settings: Settings, pool_id: str, key: str) -> list[list[Any]]:
    """GrantWork.load on the SDK's asyncio Table client, for the grant activity's event loop."""
    table = async_table_client(settings, settings.pools_table)
    return json.loads((await table.get_entity(partition_key(pool_id), key, select=["Nodes"]))["Nodes"])


def _prefix_range(prefix: str) -> dict[str, str]:
    return {"low": prefix, "high": prefix[:-1] + chr(ord(prefix[-1]) + 1)}


class GrantWork:
    """The staged chunks of grant work, in the managed pools table (partitioned by pool)."""

    def __init__(self, settings: Settings) -> None:
        self._table = _ensure_table(table_client(settings, settings.pools_table))

    def stage(self, pool_id: str, batch: str, nodes: list[list[Any]]) -> dict[str, Any]:
        """Write `nodes` (`[nodeId, ip, port, state]`, sorted by node id here) as the chunks of `batch`.
        Returns the reference the orchestration hands on: `{"work": batch, "chunks": m, "nodes": n}`."""
        pk = partition_key(pool_id)
        nodes = sorted(nodes, key=lambda n: n[0])
        rows = [
            {
                "PartitionKey": pk,
                "RowKey": chunk_key(batch, k),
                "Nodes": json.dumps(part, separators=(",", ":")),
            }
            for k, part in enumerate(chunks(nodes, CHUNK_NODES))
        ]
        for transaction in chunks(rows):
            self._table.submit_transaction(
                [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in transaction]
            )
        return {"work": batch, "chunks": len(rows), "nodes": len(nodes)}

    def staged_nodes(self, pool_id: str, run: str, *, except_batch: str | None = None) -> set[str]:
        """The node ids every earlier staging of `run` handed to granting (`except_batch` left out: a staging
        that runs again must not count its own first attempt)."""
        skip = batch_prefix(except_batch) if except_batch else None
        found: set[str] = set()
        for row in self._rows(pool_id, run_prefix(run), ["RowKey", "Nodes"]):
            if skip is None or not row["RowKey"].startswith(skip):
                found.update(node[0] for node in json.loads(row["Nodes"]))
        return found

    def load(self, pool_id: str, key: str) -> list[list[Any]]:
        """One chunk's nodes, `[[nodeId, ip, port, state], ...]`."""
        return json.loads(self._table.get_entity(partition_key(pool_id), key, select=["Nodes"])["Nodes"])

    def clear(self, pool_id: str, run: str) -> int:
        """Delete every row the run staged (safe to run again)."""
        pk = partition_key(pool_id)
        keys = [row["RowKey"] for row in self._rows(pool_id, run_prefix(run), ["RowKey"])]
        for transaction in chunks(keys):
            self._table.submit_transaction(
                [("delete", {"PartitionKey": pk, "RowKey": rk}) for rk in transaction]
            )
        return len(keys)

    def _rows(self, pool_id: str, prefix: str, select: list[str]) -> list[dict[str, Any]]:
        return list(
            self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                parameters={"pk": partition_key(pool_id), **_prefix_range(prefix)},
                select=select,
            )
        )
