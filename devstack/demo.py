"""The main job on the dev stack: send the example request through the queue, then ssh into every node."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devstack.ssh_client import SshKey, generate_key, run_ssh
from devstack.stack import REPO_ROOT, Stack, running_stack

EXAMPLE_REQUEST = REPO_ROOT / "examples" / "request.json"
PUBLIC_KEY_PLACEHOLDER = "__DEMO_PUBLIC_KEY__"
TERMINAL_PHASES = {"completed", "partial", "failed", "rejected"}


def demo_request(public_key: str) -> dict:
    request = json.loads(EXAMPLE_REQUEST.read_text())
    return json.loads(json.dumps(request).replace(PUBLIC_KEY_PLACEHOLDER, public_key))


def send_request(stack: Stack, request: dict, queue_name: str) -> None:
    queue = QueueClient.from_connection_string(
        stack.azurite.connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
    )
    try:
        queue.create_queue()
    except Exception:  # noqa: BLE001 - already exists
        pass
    queue.send_message(json.dumps(request))


def wait_for_pool(stack: Stack, pool_id: str, out: TextIO, timeout: float = 300) -> dict:
    """Poll GET /api/pools/{id}, printing each new phase, until the request reaches a terminal phase."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        status, _, body = stack.host.request("GET", f"/api/pools/{pool_id}")
        if status == 200:
            state = body
            line = f"  phase={state.get('phase')} progress={json.dumps(state.get('progress'))}"
            if line != last:
                print(line, file=out, flush=True)
                last = line
            if state.get("phase") in TERMINAL_PHASES:
                return state
        time.sleep(0.5)
    raise TimeoutError(f"pool {pool_id} did not finish within {timeout:.0f}s")


def ssh_hostname(key: SshKey, user: str, ip: str, port: int) -> str:
    """What the node answers to `hostname` over ssh, or FAILED with ssh's error."""
    result = run_ssh(key, user, ip, port, "hostname")
    return result.stdout.strip() if result.returncode == 0 else f"FAILED ({result.stderr.strip()})"


def run_demo(data_dir: Path, *, timing: str = "fast", out: TextIO = sys.stdout) -> int:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    # A fresh key pair for the demo user; the private key stays in the demo's data dir.
    key = generate_key(data_dir, "demo_key", bits=3072, comment="demo@batch-ssh-access")
    request = demo_request(key.public)
    pool_id = request["poolId"]
    print("starting the dev stack (Azurite, Batch emulator, Functions host)...", file=out, flush=True)
    with running_stack(data_dir, timing=timing) as stack:
        print(stack.describe(), file=out, flush=True)
        print(
            f"sending {EXAMPLE_REQUEST.relative_to(REPO_ROOT)} to the request queue (pool {pool_id})",
            file=out,
        )
        send_request(stack, request, "pool-requests")
        state = wait_for_pool(stack, pool_id, out)
        _, _, table = stack.host.request("GET", f"/api/pools/{pool_id}/connections?format=table")
        print(f"\nSSH connections for pool {pool_id} (outcome: {state.get('phase')}):", file=out)
        print(table, file=out)
        _, _, records = stack.host.request("GET", f"/api/pools/{pool_id}/connections")
        records = records.get("connections", records) if isinstance(records, dict) else records
        print("running `hostname` over ssh on every node:", file=out)
        failures = 0
        for record in records:
            answer = ssh_hostname(key, record["user"], record["ip"], int(record["port"]))
            failures += answer.startswith("FAILED")
            print(f"  ssh -p {record['port']} {record['user']}@{record['ip']} hostname -> {answer}", file=out)
        print(f"\nlogs: {data_dir}", file=out)
    return 1 if failures or state.get("phase") not in {"completed"} else 0
