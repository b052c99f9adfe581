"""Batch emulator benchmark: a 1,000-node pool with an SSH NAT pool and a start task, from create_pool to all
nodes idle, and list_nodes on it through the SDK, as ratios against a 10-node pool measured in the same
run."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from azure.core.rest import HttpRequest

from devstack.batch_emulator.launcher import BatchEmulatorEndpoint, start_batch_emulator
from devstack.batch_emulator.sdk_pools import newest_verified_ubuntu, ssh_pool

BASELINE_NODES = 10
LARGE_NODES = 1000
LIST_RUNS = 3


def _create_pool(endpoint: BatchEmulatorEndpoint, pool_id: str, nodes: int) -> None:
    client = endpoint.client()
    image = newest_verified_ubuntu(client)
    client.create_pool(ssh_pool(pool_id, image, nodes, "echo ready > ready.txt"))


def _idle_count(endpoint: BatchEmulatorEndpoint, pool_id: str) -> int:
    for counts in endpoint.client().list_pool_node_counts(filter=f"poolId eq '{pool_id}'"):
        return counts.dedicated.idle
    return 0


def _measure(endpoint: BatchEmulatorEndpoint, nodes: int) -> dict[str, float]:
    pool_id = f"bench-{nodes}"
    client = endpoint.client()
    start = time.perf_counter()
    _create_pool(endpoint, pool_id, nodes)
    deadline = start + 600
    while _idle_count(endpoint, pool_id) < nodes:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{pool_id}: not all {nodes} nodes idle after 600 s")
        time.sleep(0.05)
    to_idle = time.perf_counter() - start
    listings = []
    for _ in range(LIST_RUNS):
        start = time.perf_counter()
        listed = list(client.list_nodes(pool_id))
        listings.append(time.perf_counter() - start)
        assert len(listed) == nodes and all(n.endpoint_configuration for n in listed)
    raw = []
    for _ in range(LIST_RUNS):
        start = time.perf_counter()
        response = client.send_request(HttpRequest("GET", f"/pools/{pool_id}/nodes?api-version=2025-06-01"))
        response.read()
        raw.append(time.perf_counter() - start)
    rss = _rss_mb(endpoint)
    client.begin_delete_pool(pool_id, polling_interval=1).result()
    return {"to_idle": to_idle, "list_nodes": min(listings), "list_raw": min(raw), "rss_mb": rss}


def _rss_mb(endpoint: BatchEmulatorEndpoint) -> float:
    pid = endpoint.health().get("pid")
    if not pid:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="batch-emulator-bench-") as work:
        proc, endpoint = start_batch_emulator(Path(work), timing="fast")
        try:
            base = _measure(endpoint, BASELINE_NODES)
            large = _measure(endpoint, LARGE_NODES)
        finally:
            proc.stop()
    print(f"{'pool of N nodes (SSH NAT pool, start task)':44} {BASELINE_NODES:>8} {LARGE_NODES:>8}  ratio")
    rows = [
        ("create_pool -> all idle (s)", "to_idle"),
        ("list_nodes, all pages via SDK (s)", "list_nodes"),
        ("  of which the emulator's answer (s)", "list_raw"),
        ("emulator RSS with the pool (MB)", "rss_mb"),
    ]
    for label, key in rows:
        ratio = large[key] / base[key] if base[key] else float("nan")
        print(f"{label:44} {base[key]:8.2f} {large[key]:8.2f}  {ratio:5.1f}x")
    print(
        f"(node count ratio {LARGE_NODES // BASELINE_NODES}x; fast timing profile; "
        f"list timings are the best of {LIST_RUNS})"
    )


if __name__ == "__main__":
    main()
