"""The access phase — from "the nodes are idle" to "every (node, user) has its user and its record" — of the
app through the local host, against the guide's sequential loop, the limit ceil(N*U/C)*L and the SDK's floor
(the same N*U creates from a bare asyncio loop in this process, with the app's own Batch client and C calls
in flight, and nothing else), on the same emulator with the same injected Batch latency, for N nodes and U
users; plus Batch calls per node-user, the host's memory, durable history bytes per node and per-episode
replay time; and a PNG plot of time against N.

`python -m bench access [--sizes 100,1000,3000] [--guide-up-to 1000] [--plot PATH]`. The guide's loop is
measured up to --guide-up-to nodes and extrapolated per node beyond (it is strictly sequential, so linear:
~8 minutes at 3,000 nodes); `--guide-up-to 3000` measures it everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sqlite3
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.batch import models

from devstack.batch_emulator.sdk_pools import newest_verified_ubuntu, ssh_network
from devstack.functions_host.durable_bridge import DURABLE_STORE
from devstack.ssh_client import generate_key
from devstack.stack import app_settings, running_stack
from provisioning.clients import async_batch_client
from provisioning.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZES = (100, 1000, 3000)
USERS = 2
LATENCY_MS = 50
POLL = "PT0.5S/PT2S"
YEARLY = "0 0 0 1 1 *"  # NCRONTAB: midnight on 1 January
PLOT = REPO_ROOT / "bench" / "access_phase.png"
MAX_DEDICATED = 2000  # dedicated nodes per pool; the rest of N are spot nodes
PROCESSES = ("azurite", "emulator", "host")  # the order running_stack starts them in
EPISODE = re.compile(r"durable orchestrator function=(\S+) instance=(\S+) events=\d+ duration_ms=([\d.]+)")
POLLED = re.compile(
    r"^(\S+ \S+) .*durable activity function=poll_pool instance=(\S+) .*duration_ms=([\d.]+) outcome=succ"
)
GRANTED = re.compile(
    r"^(\S+ \S+) .*durable activity function=grant_node_users instance=(\S+) .*outcome=succeeded"
)


@dataclass
class AppRun:
    nodes: int
    access: float  # seconds from the last node idle to every user and record
    first_user_after_idle: float
    # after the poll that saw the nodes idle began (or after the last idle, if that poll began before): the
    # app's own part of the wait for the first user
    first_user_after_poll: float
    calls_per_node_user: float
    calls: int
    records: int
    host_peak_mb: float
    history_bytes: int
    cpu: dict[str, float] = field(default_factory=dict)
    episodes: dict[str, list[float]] = field(default_factory=dict)


def _split(nodes: int) -> dict[str, int]:
    return {"dedicated": min(nodes, MAX_DEDICATED), "spot": max(0, nodes - MAX_DEDICATED)}


def _request(pool_id: str, nodes: int, public_key: str) -> dict:
    return {
        "poolId": pool_id,
        "vmSize": "Standard_D2s_v3",
        "nodes": _split(nodes),
        "image": {"os": "ubuntu", "version": "24.04"},
        "ssh": {
            "frontendPortRange": {"start": 20000, "end": 20000 + max(nodes, 40) + 9},
            "allowedSourcePrefixes": ["127.0.0.0/8"],
        },
        "users": [
            {"name": f"user{i}", "sshPublicKey": public_key, "expiry": "PT2H"} for i in range(1, USERS + 1)
        ],
    }


def _last_idle(client, pool_id: str) -> float:
    """When the last node of the pool went idle (epoch seconds), from the nodes' stateTransitionTime."""
    nodes = list(client.list_nodes(pool_id, select=["id", "state", "stateTransitionTime"]))
    assert all(n.state == "idle" for n in nodes), "a node left idle during the run"
    return max(n.state_transition_time for n in nodes).timestamp()


class FirstUserWatch:
    """Notes when the emulator first counts a create_node_user call (its control API, polled every 20 ms)."""

    def __init__(self, batch) -> None:
        self.batch, self.at = batch, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.at is None:
            if self.batch.counters()["calls"].get("create_node_user"):
                self.at = time.time()
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its descendants so far."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
        used[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(used.get(p, 0.0) for p in tree)


def _polled_before(log: Path, instance_id: str, moment: float) -> float | None:
    """When the last poll of the instance that ended before `moment` started, from the host's log."""
    last = None
    for line in log.read_text(errors="replace").splitlines():
        match = POLLED.search(line)
        if match and match.group(2) == instance_id:
            ended = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if ended <= moment:
                last = ended - float(match.group(3)) / 1000
    return last


def _granted_at(log: Path, instance_id: str) -> float | None:
    """When the last chunk of the instance finished (its records written), from the host's log."""
    last = None
    for line in log.read_text(errors="replace").splitlines():
        match = GRANTED.search(line)
        if match and match.group(2).startswith(instance_id):
            last = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return last


def _history_bytes(store: Path, instance_id: str) -> int:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        (size,) = db.execute(
            "SELECT COALESCE(SUM(LENGTH(event)), 0) FROM history WHERE instance_id = ? OR instance_id LIKE ?",
            (instance_id, f"{instance_id}:%"),
        ).fetchone()
    return int(size)


def _episodes(log: Path, instance_id: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        match = EPISODE.search(line)
        if match and match.group(2).startswith(instance_id):
            found.setdefault(match.group(1), []).append(float(match.group(3)))
    return found


def run_app(stack, data_dir: Path, nodes: int, public_key: str, client) -> AppRun:
    pool_id = f"app-{nodes}"
    stack.batch.reset_counters()
    cpu = {name: _cpu_seconds(proc.pid) for name, proc in zip(PROCESSES, stack.processes, strict=True)}
    watch = FirstUserWatch(stack.batch)
    status, _, body = stack.host.request("POST", "/api/pools", json=_request(pool_id, nodes, public_key))
    if status != 202:
        raise RuntimeError(f"POST /api/pools answered {status}: {body}")
    instance_id = body["instanceId"]
    final = stack.host.wait_for_instance(instance_id, timeout=1800, interval=0.5)
    watch.stop()
    output = final.get("output") or {}
    if final["runtimeStatus"] != "Completed" or output.get("outcome") != "completed":
        raise RuntimeError(f"pool {pool_id} did not complete: {str(output)[:500]}")
    calls = stack.batch.counters()["total"]
    for name, proc in zip(PROCESSES, stack.processes, strict=True):
        cpu[name] = _cpu_seconds(proc.pid) - cpu[name]
    idle = _last_idle(client, pool_id)
    log = data_dir / "functions-host.log"
    done = _granted_at(log, instance_id)
    first = watch.at or done
    host_pid = stack.processes[-1].pid
    return AppRun(
        nodes=nodes,
        access=done - idle,
        first_user_after_idle=first - idle,
        first_user_after_poll=first - max(_polled_before(log, instance_id, first) or idle, idle),
        calls_per_node_user=calls / (nodes * USERS),
        calls=calls,
        records=output["progress"]["records"],
        host_peak_mb=_peak_rss_mb(host_pid),
        history_bytes=_history_bytes(data_dir / "host" / DURABLE_STORE, instance_id),
        cpu=cpu,
        episodes=_episodes(log, instance_id),
    )


def run_guide(client, image, nodes: int, public_key: str) -> float:
    """The guide's way, with the same SDK, emulator and latency: once every node is idle, for each node
    create each user, then read its remote login settings — one call after another. Seconds for the loop."""
    pool_id = f"guide-{nodes}"
    split = _split(nodes)
    client.create_pool(
        models.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=models.VirtualMachineConfiguration(
                image_reference=image.image_reference, node_agent_sku_id=image.node_agent_sku_id
            ),
            target_dedicated_nodes=split["dedicated"],
            target_low_priority_nodes=split["spot"],
            network_configuration=ssh_network(20000, 20000 + max(nodes, 40) + 9),
        )
    )
    while True:
        listed = list(client.list_nodes(pool_id, select=["id", "state"]))
        if len(listed) == nodes and all(n.state == "idle" for n in listed):
            break
        time.sleep(0.2)
    expiry = datetime.now(UTC) + timedelta(hours=2)
    started = time.perf_counter()
    table = []
    for node in client.list_nodes(pool_id):
        for i in range(1, USERS + 1):
            client.create_node_user(
                pool_id,
                node.id,
                models.BatchNodeUserCreateOptions(
                    name=f"user{i}", is_admin=False, expiry_time=expiry, ssh_public_key=public_key
                ),
            )
        login = client.get_node_remote_login_settings(pool_id, node.id)
        table.append((node.id, node.state, login.remote_login_ip_address, login.remote_login_port))
    elapsed = time.perf_counter() - started
    assert len(table) == nodes
    client.begin_delete_pool(pool_id, polling_interval=1)
    return elapsed


def run_floor(stack, pool_id: str, public_key: str, concurrency: int) -> float:
    """The SDK's floor: the app's N*U creates again (users `floor1`..`floorU` on every node of the app's
    pool), from a bare asyncio loop in this process with the app's own Batch client (provisioning.clients)
    and at most `concurrency` calls in flight — no host, no records, no durable work. The fastest this
    machine gets the SDK through C concurrent calls against this emulator: whatever the app takes beyond it
    is the app's. Seconds for the creates."""
    client = stack.batch.client()
    node_ids = [n.id for n in client.list_nodes(pool_id, select=["id"])]
    expiry = datetime.now(UTC) + timedelta(hours=2)
    settings = load_settings(app_settings(stack.azurite, stack.batch))

    async def creates() -> float:
        batch = async_batch_client(settings)
        slots = asyncio.Semaphore(concurrency)

        async def create(node_id: str, name: str) -> None:
            async with slots:
                await batch.create_node_user(
                    pool_id,
                    node_id,
                    models.BatchNodeUserCreateOptions(
                        name=name, expiry_time=expiry, ssh_public_key=public_key
                    ),
                    retry_total=0,
                )

        try:
            started = time.perf_counter()
            await asyncio.gather(*(create(n, f"floor{i}") for n in node_ids for i in range(1, USERS + 1)))
            return time.perf_counter() - started
        finally:
            await batch.close()

    return asyncio.run(creates())


def plot(path: Path, sizes: list[int], app: list[float], floor: list[float], guide: list[float],
         measured: list[bool], limit: list[float], concurrency: int) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.plot(sizes, guide, "s-", color="tab:red", label="the guide's sequential loop")
    ax.plot(sizes, app, "o-", color="tab:blue", label="this app, through the host")
    ax.plot(sizes, floor, "^:", color="tab:green", label=f"the SDK's floor: a bare loop, C={concurrency}")
    ax.plot(sizes, limit, "--", color="tab:gray", label=f"limit ceil(N*U/C)*L, C={concurrency}")
    for n, g, m in zip(sizes, guide, measured, strict=True):
        if not m:
            ax.annotate("extrapolated", (n, g), textcoords="offset points", xytext=(-60, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("nodes N (U=2 users each)")
    ax.set_ylabel("access phase (s): nodes idle -> every user and record")
    ax.set_title(f"Access phase with {LATENCY_MS} ms injected on every Batch call")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench access", description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="node counts, comma separated")
    parser.add_argument("--guide-up-to", type=int, default=1000, help="measure the guide up to this N")
    parser.add_argument("--plot", type=Path, default=PLOT, help="where to save the PNG (default %(default)s)")
    parser.add_argument("--keep", type=Path, help="keep the stack's logs and stores in this directory")
    parser.add_argument("--concurrency", type=int, help="BATCH_CONCURRENCY for the host (default: the app's)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    concurrency = args.concurrency or load_settings({}).batch_concurrency
    apps: list[AppRun] = []
    floors: list[float] = []
    guides: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="access-bench-") as tmp:
        key = generate_key(Path(tmp))
        data_dir = args.keep or Path(tmp) / "stack"
        # The timers are not part of the access phase, and they fire every 5 minutes by default: a reconcile
        # that fell into a measurement marked the records of the pools deleted before it `gone` (thousands of
        # Table writes) and slowed the phase by a quarter. Here they fire once a year.
        settings = {"MAX_NODES_PER_REQUEST": str(max(sizes)), "IDLE_POLL_INTERVAL": POLL,
                    "BATCH_CONCURRENCY": str(concurrency), "RECONCILE_SCHEDULE": YEARLY,
                    "CLEANUP_SCHEDULE": YEARLY}  # fmt: skip
        # The service documents no fixed size for such a pool (the core quota bounds it); the emulator's
        # default limit is 2,000 nodes per pool, so the largest N needs a larger one.
        emulator = ["--max-nodes-per-pool", str(max(max(sizes), 2000))]
        with running_stack(data_dir, extra_settings=settings, emulator_args=emulator) as stack:
            client = stack.batch.client()
            image = newest_verified_ubuntu(client)
            stack.batch.inject_fault("*", latency_ms=LATENCY_MS)
            for n in sizes:
                apps.append(run_app(stack, data_dir, n, key.public, client))
                print(f"  N={n}: app {apps[-1].access:.2f} s", flush=True)
                floors.append(run_floor(stack, f"app-{n}", key.public, concurrency))
                print(f"  N={n}: SDK floor {floors[-1]:.2f} s", flush=True)
                if n <= args.guide_up_to:
                    guides[n] = run_guide(client, image, n, key.public)
                    print(f"  N={n}: guide {guides[n]:.1f} s", flush=True)
                client.begin_delete_pool(f"app-{n}", polling_interval=1)
    per_node = guides[max(guides)] / max(guides) if guides else float("nan")
    guide = [guides.get(n, per_node * n) for n in sizes]
    limit = [math.ceil(n * USERS / concurrency) * LATENCY_MS / 1000 for n in sizes]
    report(sizes, apps, floors, guide, [n in guides for n in sizes], limit, concurrency)
    plot(args.plot, sizes, [a.access for a in apps], floors, guide, [n in guides for n in sizes], limit,
         concurrency)  # fmt: skip
    shown = args.plot.relative_to(REPO_ROOT) if args.plot.is_relative_to(REPO_ROOT) else args.plot
    print(f"plot saved to {shown}")


def report(sizes, apps, floors, guide, measured, limit, concurrency) -> None:
    print(f"access phase, U={USERS} users, L={LATENCY_MS} ms on every Batch call,"
          f" C={concurrency} (BATCH_CONCURRENCY), poll {POLL}")  # fmt: skip
    row = "{:<40}" + "{:>11}" * len(sizes)
    print(row.format("nodes N", *sizes))
    print(row.format("app through the host (s)", *(f"{a.access:.2f}" for a in apps)))
    shown = [f"{g:.1f}{'' if m else '~'}" for g, m in zip(guide, measured, strict=True)]
    print(row.format("guide's sequential loop (s)", *shown))
    print(row.format("limit ceil(N*U/C)*L (s)", *(f"{x:.2f}" for x in limit)))
    print(row.format("SDK floor: bare loop, C in flight (s)", *(f"{f:.2f}" for f in floors)))
    print(row.format("app / limit", *(f"{a.access / x:.2f}x" for a, x in zip(apps, limit, strict=True))))
    print(row.format("SDK floor / limit", *(f"{f / x:.2f}x" for f, x in zip(floors, limit, strict=True))))
    print(row.format("app / SDK floor", *(f"{a.access / f:.2f}x" for a, f in zip(apps, floors, strict=True))))
    print(row.format("guide / app", *(f"{g / a.access:.0f}x" for g, a in zip(guide, apps, strict=True))))
    print(row.format("first user after last idle (s)", *(f"{a.first_user_after_idle:.2f}" for a in apps)))
    print(row.format("  after the poll that saw it (s)", *(f"{a.first_user_after_poll:.2f}" for a in apps)))
    granting = [a.access - a.first_user_after_idle for a in apps]
    print(row.format("first user -> last record (s)", *(f"{g:.2f}" for g in granting)))
    print(row.format("  / limit", *(f"{g / x:.2f}x" for g, x in zip(granting, limit, strict=True))))
    print(row.format("Batch calls per node-user", *(f"{a.calls_per_node_user:.3f}" for a in apps)))
    print(row.format("records written", *(a.records for a in apps)))
    print(row.format("host peak RSS (MB)", *(f"{a.host_peak_mb:.0f}" for a in apps)))
    for name in PROCESSES:
        print(row.format(f"CPU s of the whole run: {name}", *(f"{a.cpu[name]:.1f}" for a in apps)))
    print(row.format("history bytes per node", *(f"{a.history_bytes / a.nodes:.0f}" for a in apps)))
    names = sorted({name for a in apps for name in a.episodes})
    for name in names:
        cells = [
            f"{statistics.median(a.episodes[name]):.0f}/{max(a.episodes[name]):.0f}"
            if a.episodes.get(name)
            else "-"
            for a in apps
        ]
        print(row.format(f"{name} episode ms, median/max"[:40], *cells))
    by_n = {a.nodes: a for a in apps}
    if 1000 in by_n and 3000 in by_n:
        small, big = by_n[1000], by_n[3000]
        print(f"time(3000)/time(1000) = {big.access / small.access:.2f}  (node ratio 3.0)")
        print(f"host memory at 3000 / at 1000 = {big.host_peak_mb / small.host_peak_mb:.2f}")
    total_calls = sum(a.calls for a in apps)
    total_pairs = sum(a.nodes * USERS for a in apps)
    print(f"Batch calls per node-user over the whole run: {total_calls / total_pairs:.4f}"
          f" ({total_calls} calls for {total_pairs} node-users)")  # fmt: skip
    print("~ = extrapolated per node from the largest N measured (the loop is sequential)")


if __name__ == "__main__":
    main()
