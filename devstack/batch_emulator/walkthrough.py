"""A walk through the emulator with the real azure-batch SDK and OpenSSH: pick an image, create a pool with a
start task and an SSH NAT pool, wait for idle nodes, add a user with a fresh RSA key, ssh to every node,
delete the pool. `python -m devstack.batch_emulator.walkthrough` starts its own emulator for it."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from devstack.batch_emulator.launcher import BatchEmulatorEndpoint, start_batch_emulator
from devstack.batch_emulator.sdk_pools import newest_verified_ubuntu, ssh_pool
from devstack.ssh_client import generate_key, run_ssh

USER = "walker"


def run_walkthrough(
    endpoint: BatchEmulatorEndpoint, *, nodes: int = 3, out: TextIO = sys.stdout, timeout: float = 600
) -> int:
    """Run the walk-through against a running emulator; 0 when every node answered `hostname` with its id."""
    from azure.batch import models as m

    client = endpoint.client()
    image = newest_verified_ubuntu(client)
    print(
        f"image: {image.node_agent_sku_id} ({image.image_reference.publisher}/"
        f"{image.image_reference.offer}/{image.image_reference.sku})",
        file=out,
    )
    pool_id = f"walkthrough-{uuid.uuid4().hex[:8]}"
    client.create_pool(
        ssh_pool(
            pool_id,
            image,
            nodes,
            'echo "node $AZ_BATCH_NODE_ID of $AZ_BATCH_POOL_ID is ready"',
            elevated=True,
        )
    )
    print(f"pool {pool_id}: creating {nodes} node(s)", file=out)
    try:
        ready = _wait_for_idle(client, pool_id, nodes, timeout, out)
        if ready is None:
            return 1
        with tempfile.TemporaryDirectory(prefix="walkthrough-key-") as key_dir:
            key = generate_key(Path(key_dir), bits=3072)
            rows = []
            for node in ready:
                client.create_node_user(
                    pool_id,
                    node.id,
                    m.BatchNodeUserCreateOptions(
                        name=USER,
                        is_admin=True,
                        ssh_public_key=key.public,
                        expiry_time=datetime.now(UTC) + timedelta(hours=1),
                    ),
                )
                login = client.get_node_remote_login_settings(pool_id, node.id)
                rows.append(
                    (node.id, _text(node.state), login.remote_login_ip_address, login.remote_login_port)
                )
            _print_table(rows, out)
            failures = 0
            for node_id, _, ip, port in rows:
                result = run_ssh(key, USER, ip, port, "hostname")
                answer = result.stdout.strip() or result.stderr.strip()
                print(f"$ ssh -p {port} {USER}@{ip} hostname\n{answer}", file=out)
                failures += result.returncode != 0 or answer != node_id
        print("all nodes answered" if not failures else f"{failures} node(s) did not answer", file=out)
        return 0 if not failures else 1
    finally:
        client.begin_delete_pool(pool_id, polling_interval=1).result()
        print(f"pool {pool_id}: deleted", file=out)


def _wait_for_idle(client, pool_id: str, count: int, timeout: float, out: TextIO):
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        nodes = list(client.list_nodes(pool_id))
        states = sorted(_text(n.state) for n in nodes)
        summary = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))) or "no nodes yet"
        if summary != last:
            print(f"  {summary}", file=out)
            last = summary
        if len(nodes) == count and all(n.state == "idle" for n in nodes):
            return nodes
        if any(n.state in ("starttaskfailed", "unusable") for n in nodes):
            print("a node failed to start; giving up", file=out)
            return None
        time.sleep(0.2)
    print(f"timed out after {timeout:.0f}s waiting for idle nodes", file=out)
    return None


def _text(value: object) -> str:
    return str(getattr(value, "value", value))


def _print_table(rows: list[tuple[str, str, str, int]], out: TextIO) -> None:
    header = ("node", "state", "ip", "port")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.batch_emulator.walkthrough", description=__doc__
    )
    parser.add_argument("--nodes", type=int, default=3, help="pool size. Default: %(default)s")
    parser.add_argument("--timing", default="fast", help="emulator timing profile. Default: %(default)s")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="batch-walkthrough-") as work:
        proc, endpoint = start_batch_emulator(Path(work), timing=args.timing)
        print(f"batch emulator at {endpoint.url} (account {endpoint.account})")
        try:
            return run_walkthrough(endpoint, nodes=args.nodes)
        finally:
            proc.stop()


if __name__ == "__main__":
    sys.exit(main())
