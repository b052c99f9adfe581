"""The product end to end on the dev stack: time from `POST /api/pools` to every SSH connection record
written, for a 1,000-node pool against a 10-node baseline in the same run, and the time to read them back."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from devstack.ssh_client import generate_key
from devstack.stack import running_stack

SIZES = (10, 1000)


def _request(pool_id: str, nodes: int, public_key: str) -> dict:
    return {
        "poolId": pool_id,
        "vmSize": "Standard_D2s_v3",
        "nodes": {"dedicated": nodes},
        "image": {"os": "ubuntu", "version": "24.04"},
        "startTask": {"commandLine": "true", "waitForSuccess": True},
        "ssh": {
            "frontendPortRange": {"start": 30000, "end": 30000 + max(nodes, 40) - 1},
            "allowedSourcePrefixes": ["127.0.0.0/8"],
        },
        "users": [{"name": "bench", "sshPublicKey": public_key, "expiry": "PT1H"}],
    }


def _provision(stack, request: dict) -> tuple[float, float, int]:
    """(seconds to a terminal phase, seconds to list the records as JSON, number of records)."""
    started = time.perf_counter()
    status, _, body = stack.host.request("POST", "/api/pools", json=request)
    if status != 202:
        raise RuntimeError(f"POST /api/pools answered {status}: {body}")
    final = stack.host.wait_for_instance(body["instanceId"], timeout=600, interval=0.2)
    provisioned = time.perf_counter() - started
    if final["runtimeStatus"] != "Completed" or final["output"]["outcome"] != "completed":
        raise RuntimeError(f"pool {request['poolId']} did not complete: {final.get('output')}")
    started = time.perf_counter()
    _, _, listed = stack.host.request("GET", f"/api/pools/{request['poolId']}/connections")
    return provisioned, time.perf_counter() - started, len(listed["connections"])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="app-bench-") as tmp:
        key = generate_key(Path(tmp))
        settings = {"MAX_NODES_PER_REQUEST": str(max(SIZES)), "IDLE_POLL_INTERVAL": "PT0.5S/PT2S"}
        with running_stack(Path(tmp) / "stack", extra_settings=settings) as stack:
            results = {n: _provision(stack, _request(f"bench-{n}", n, key.public)) for n in SIZES}
    small, big = (results[n] for n in SIZES)
    row = "{:<44}{:>9}{:>9}{:>8}"
    print(row.format("pool of N nodes, one user, through the host", *SIZES, "ratio"))
    print(
        row.format(
            "POST /api/pools -> all records written (s)",
            f"{small[0]:.2f}",
            f"{big[0]:.2f}",
            f"{big[0] / small[0]:.1f}x",
        )
    )
    print(
        row.format("GET .../connections (s)", f"{small[1]:.2f}", f"{big[1]:.2f}", f"{big[1] / small[1]:.1f}x")
    )
    print(row.format("records", small[2], big[2], f"{big[2] / small[2]:.0f}x"))
    print(
        f"(node count ratio {SIZES[1] // SIZES[0]}x; emulator fast timing profile; users granted in chunks of"
        " 50 nodes, 10 chunks a sub-orchestration)"
    )


if __name__ == "__main__":
    main()
