"""Runs under injected Batch faults, end to end on the dev stack: each run provisions a pool with two users,
revokes one and lets expiry cleanup take the other, while the emulator fails a share of all Batch calls
(429 with Retry-After, 500, 503, dropped connections, and 500 or a dropped connection after the operation took
effect). A run counts as good when it ends exactly as the same run without faults: the same outcome, each
(node, user) created once with one record, no user on a node without a record, and revoke and cleanup
leaving no user behind. Prints the figure; `run_scenarios` is also what the slow e2e test runs.

`python -m bench faults` (FAULT_RUNS, FAULT_RATE and FAULT_WAVE override 24 runs, 30 %, 8 at a time)."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.process import wait_until
from devstack.ssh_client import generate_key

NODES = 2
KINDS = (  # the mixed faults, each at an equal share of the rate
    {"status": 429, "retryAfter": 1},
    {"status": 500},
    {"status": 503, "retryAfter": 1},
    {"drop": True},
    {"status": 500, "after": True},
    {"drop": True, "after": True},
)
STACK_SETTINGS = {  # what the runs need of the app: fast polling, frequent cleanup, no reconcile
    "IDLE_POLL_INTERVAL": "PT0.5S/PT1S",
    "PROVISION_DEADLINE": "PT5M",
    "MAX_ACCESS_DURATION": "P1D",
    "CLEANUP_SCHEDULE": "*/2 * * * * *",
    "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
    "DELETE_POOL_ON_FAILURE": "false",
}
EXPIRING_AFTER_SECONDS = 60  # the second user's expiry: cleanup takes it away once the run is done


@dataclass
class RunResult:
    """What one run ended with, and every way it differed from a run without faults."""

    pool_id: str
    outcome: str | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def good(self) -> bool:
        return not self.problems


def inject_mixed_faults(batch: Any, rate: float) -> None:
    """Every Batch operation fails with probability `rate`, spread evenly over KINDS."""
    share = 1 - (1 - rate) ** (1 / len(KINDS))
    batch.clear_faults()
    for kind in KINDS:
        batch.control("POST", "faults", json={"operation": "*", "rate": share, **kind})


def _request(pool_id: str, public_key: str) -> dict:
    return {
        "poolId": pool_id,
        "vmSize": "Standard_D2s_v3",
        "nodes": {"dedicated": NODES},
        "image": {"os": "ubuntu", "version": "24.04"},
        "ssh": {"allowedSourcePrefixes": ["127.0.0.0/8"]},
        "users": [
            {"name": "alice", "sshPublicKey": public_key, "expiry": "PT12H"},
            {"name": "bob", "sshPublicKey": public_key, "expiry": f"PT{EXPIRING_AFTER_SECONDS}S"},
        ],
    }


def _node_users(batch: Any, pool_id: str) -> dict[str, set[str]]:
    return {n["id"]: set(n["users"]) for n in batch.pool_nodes(pool_id)["nodes"]}


def _records(host: Any, pool_id: str) -> list[dict]:
    status, _, body = host.request("GET", f"/api/pools/{pool_id}/connections")
    if status != 200:
        raise RuntimeError(f"GET connections of {pool_id} answered {status}: {body}")
    return body["connections"]


def _check_users_and_records(batch: Any, host: Any, pool_id: str, result: RunResult) -> list[dict]:
    """One record per (node, user), and every user on a node has a live record there."""
    records = _records(host, pool_id)
    counted = Counter((r["nodeId"], r["user"]) for r in records)
    result.problems += [f"{n} records of {key}" for key, n in sorted(counted.items()) if n > 1]
    live = {(r["nodeId"], r["user"]) for r in records if r["state"] in ("pending", "active")}
    for node_id, users in sorted(_node_users(batch, pool_id).items()):
        result.problems += [f"user {u} on {node_id} has no live record" for u in sorted(users)
                            if (node_id, u) not in live]  # fmt: skip
    return records


def _wait_for_users_gone(batch: Any, host: Any, pool_id: str, user: str, state: str, timeout: float) -> bool:
    """Until `user` is on no node of the pool and every record of it is in `state`."""

    def gone() -> bool:
        on_nodes = any(user in users for users in _node_users(batch, pool_id).values())
        states = {r["state"] for r in _records(host, pool_id) if r["user"] == user}
        return not on_nodes and states == {state}

    try:
        wait_until(gone, timeout, f"{user} gone from {pool_id}", interval=0.5)
        return True
    except TimeoutError:
        return False


def start_run(host: Any, public_key: str, prefix: str) -> tuple[RunResult, str, float]:
    pool_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    status, _, body = host.request("POST", "/api/pools", json=_request(pool_id, public_key))
    if status != 202:
        raise RuntimeError(f"POST /api/pools answered {status}: {body}")
    return RunResult(pool_id), body["instanceId"], started


def check_provisioned(batch: Any, host: Any, run: RunResult, instance_id: str, expected: str | None) -> None:
    """The run's outcome, and every (node, user) granted once with one record."""
    final = host.wait_for_instance(instance_id, timeout=600, interval=0.5)
    output = final.get("output") or {}
    run.outcome = output.get("outcome") if final["runtimeStatus"] == "Completed" else final["runtimeStatus"]
    if expected is not None and run.outcome != expected:
        run.problems.append(f"outcome {run.outcome} (without faults: {expected}): {output.get('error')}")
    records = _check_users_and_records(batch, host, run.pool_id, run)
    nodes = _node_users(batch, run.pool_id)
    granted = {(r["nodeId"], r["user"]) for r in records if r["state"] in ("active", "expired")}
    wanted = {(node_id, user) for node_id in nodes for user in ("alice", "bob")}
    if len(nodes) != NODES or granted != wanted:
        run.problems.append(f"{len(granted)} granted records on {len(nodes)} nodes, not {len(wanted)}")


def take_access_away(batch: Any, host: Any, runs: list[RunResult]) -> None:
    """Revoke alice on every run's pool, then wait for that and for cleanup to take bob (past his expiry)."""
    for run in runs:
        status, _, body = host.request("DELETE", f"/api/pools/{run.pool_id}/users/alice")
        if status not in (200, 202):
            run.problems.append(f"revoke answered {status}: {body}")
    for run in runs:
        if not _wait_for_users_gone(batch, host, run.pool_id, "alice", "revoked", 300):
            run.problems.append("revoke left alice on a node or a record not revoked")
        if not _wait_for_users_gone(batch, host, run.pool_id, "bob", "expired", 300):
            run.problems.append("cleanup left bob on a node or a record not expired")
        _check_users_and_records(batch, host, run.pool_id, run)


def run_wave(stack: Any, count: int, public_key: str, prefix: str, expected: str | None) -> list[RunResult]:
    """`count` runs at once: provision, check, revoke, cleanup."""
    started = [start_run(stack.host, public_key, prefix) for _ in range(count)]
    for run, instance_id, _ in started:
        check_provisioned(stack.batch, stack.host, run, instance_id, expected)
    runs = [run for run, _, _ in started]
    take_access_away(stack.batch, stack.host, runs)
    for run, _, began in started:
        run.seconds = time.monotonic() - began
    return runs


def run_scenarios(
    stack: Any, runs: int, rate: float, wave: int, public_key: str
) -> tuple[str, list[RunResult]]:
    """One run without faults (the expected outcome), then `runs` runs at `rate`, `wave` at a time."""
    stack.batch.clear_faults()
    (baseline,) = run_wave(stack, 1, public_key, "nofault", None)
    if not baseline.good:
        raise RuntimeError(f"the run without faults went wrong: {baseline.problems}")
    results: list[RunResult] = []
    stack.batch.reset_counters()
    try:
        inject_mixed_faults(stack.batch, rate)
        while len(results) < runs:
            results += run_wave(stack, min(wave, runs - len(results)), public_key, "fault", baseline.outcome)
    finally:
        stack.batch.clear_faults()
    return baseline.outcome, results


def summary(expected: str, results: list[RunResult], rate: float, injected: int, calls: int) -> str:
    good = sum(r.good for r in results)
    lines = [
        f"{len(results)} runs at {rate:.0%} injected Batch faults ({injected} of {calls} calls faulted): "
        f"{good}/{len(results)} ended as without faults (outcome {expected}, one user and one record per "
        "(node, user), none without a record, revoke and cleanup complete)",
        f"outcomes: {dict(Counter(r.outcome for r in results))}; "
        f"seconds per run (submit to cleanup done): max {max(r.seconds for r in results):.0f}",
    ]
    lines += [f"  {r.pool_id}: {'; '.join(r.problems)}" for r in results if not r.good]
    return "\n".join(lines)


def main() -> None:
    from devstack.stack import running_stack

    runs = int(os.environ.get("FAULT_RUNS", "24"))
    rate = float(os.environ.get("FAULT_RATE", "0.3"))
    wave = int(os.environ.get("FAULT_WAVE", "8"))
    with tempfile.TemporaryDirectory(prefix="fault-bench-") as tmp:
        key = generate_key(Path(tmp))
        with running_stack(Path(tmp) / "stack", extra_settings=STACK_SETTINGS) as stack:
            expected, results = run_scenarios(stack, runs, rate, wave, key.public)
            counters = stack.batch.counters()
    print(summary(expected, results, rate, sum(counters["injected"].values()), counters["total"]))


if __name__ == "__main__":
    main()
