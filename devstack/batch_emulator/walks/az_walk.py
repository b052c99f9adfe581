"""The client walk with the Azure CLI (`az batch`, a client this project did not write): supported images,
create a pool with an SSH inbound NAT pool, get, list, resize, nodes, create / replace / delete a node user
(logging in over SSH in between), remote login settings, delete. It starts its own emulator and prints one
line per step; `make az-walk` installs the CLI into its own venv first.

    python -m devstack.batch_emulator.walks.az_walk --az .devstack/az-cli/bin/az
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.batch_emulator.launcher import start_batch_emulator
from devstack.ssh_client import generate_key, run_ssh

POOL_ID = "az-walk"
FRONTEND_PORT = 44000


class WalkError(RuntimeError):
    """A step did not do what the service would have done."""


@dataclass
class AzCli:
    """Runs `az` against one Batch account (shared key, from the environment), with a private config dir."""

    executable: str
    env: dict[str, str]
    calls: list[list[str]] = field(default_factory=list)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self.executable, *args, "--only-show-errors"]
        self.calls.append(list(args))
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise WalkError(f"az {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        out = self.run(*args, "--output", "json").stdout
        return json.loads(out) if out.strip() else None


def until(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WalkError(f"timed out waiting for {what}")
        time.sleep(0.2)


def say(step: str, detail: str = "") -> None:
    print(f"{step:<22} {detail}", flush=True)


def walk(az: AzCli, public_key: str, private_key: Path) -> list[str]:
    """The walk; returns the findings (differences the walk met and went around)."""
    findings: list[str] = []
    images = az.json(
        "batch", "pool", "supported-images", "list", "--filter", "verificationType eq 'verified'"
    )
    current = [i for i in images if i["osType"] == "linux" and "ubuntu" in i["nodeAgentSkuId"]]
    image = max(current, key=lambda i: i["nodeAgentSkuId"])
    say("supported-images", f"{len(images)} verified; chose {image['nodeAgentSkuId']}")

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump(
            {
                "id": POOL_ID,
                "vmSize": "standard_d2s_v3",
                "virtualMachineConfiguration": {
                    "imageReference": image["imageReference"],
                    "nodeAgentSKUId": image["nodeAgentSkuId"],
                },
                "targetDedicatedNodes": 2,
                "startTask": {"commandLine": "/bin/sh -c 'echo ready'", "waitForSuccess": True},
                "networkConfiguration": {
                    "endpointConfiguration": {
                        "inboundNATPools": [
                            {
                                "name": "ssh",
                                "protocol": "tcp",
                                "backendPort": 22,
                                "frontendPortRangeStart": FRONTEND_PORT,
                                "frontendPortRangeEnd": FRONTEND_PORT + 99,
                            }
                        ]
                    }
                },
            },
            spec,
        )
    az.run("batch", "pool", "create", "--json-file", spec.name)
    os.unlink(spec.name)
    say("create-pool", POOL_ID)
    pool = az.json("batch", "pool", "show", "--pool-id", POOL_ID)
    say("get-pool", f"state={pool['state']} allocationState={pool['allocationState']}")
    listed = az.json("batch", "pool", "list", "--filter", f"id eq '{POOL_ID}'", "--query", "[].id")
    if listed != [POOL_ID]:
        raise WalkError(f"pool list shows {listed}")
    say("list-pools", ",".join(listed))

    def idle(count: int) -> list[dict] | None:
        nodes = az.json("batch", "node", "list", "--pool-id", POOL_ID)
        return nodes if len(nodes) == count and all(n["state"] == "idle" for n in nodes) else None

    until("2 idle nodes", lambda: idle(2))
    until(
        "a steady pool",
        lambda: az.json("batch", "pool", "show", "--pool-id", POOL_ID)["allocationState"] == "steady",
    )
    resized = az.run(
        "batch", "pool", "resize", "--pool-id", POOL_ID, "--target-dedicated-nodes", "3", check=False
    )
    if resized.returncode == 0:
        nodes = until("3 idle nodes", lambda: idle(3))
        say("resize-pool", "3 nodes")
    elif "PropertyValue: 3" in resized.stderr and "must be an integer" in resized.stderr:
        # az 2.91 (azure-batch 15.0.0b1) sends {"targetDedicatedNodes": "3"}: a JSON string, not a number.
        findings.append(
            'az batch pool resize sends targetDedicatedNodes as a JSON string ("3"); the emulator refuses it '
            "with 400 InvalidPropertyValue"
        )
        say("resize-pool", "REFUSED: the CLI sent the node count as a string (see findings)")
        nodes = idle(2) or []
    else:
        raise WalkError(f"az batch pool resize failed: {resized.stderr.strip()}")
    say("list-nodes", " ".join(f"{n['id'][:14]}..={n['state']}" for n in nodes))

    endpoints = []
    for node in nodes:
        az.run(
            "batch", "node", "user", "create", "--pool-id", POOL_ID, "--node-id", node["id"],
            "--name", "walker", "--ssh-public-key", public_key, "--expiry-time", _in_hours(1),
        )  # fmt: skip
        login = az.json(
            "batch", "node", "remote-login-settings", "show", "--pool-id", POOL_ID, "--node-id", node["id"]
        )
        endpoints.append((node["id"], login["remoteLoginIpAddress"], login["remoteLoginPort"]))
    say("create-user", f"walker on {len(nodes)} nodes")
    for node_id, ip, port in endpoints:
        result = run_ssh(private_key, "walker", ip, port, "hostname")
        if result.returncode != 0 or result.stdout.strip() != node_id:
            raise WalkError(f"ssh walker@{ip}:{port} failed: {result.stderr.strip()}")
    say("remote-login+ssh", ", ".join(f"{ip}:{port}" for _, ip, port in endpoints))

    for node in nodes:
        az.run(
            "batch", "node", "user", "reset", "--pool-id", POOL_ID, "--node-id", node["id"],
            "--user-name", "walker", "--ssh-public-key", public_key, "--expiry-time", _in_hours(2),
        )  # fmt: skip
    say("replace-user", f"{len(nodes)} nodes")
    for node in nodes:
        az.run(
            "batch", "node", "user", "delete", "--pool-id", POOL_ID, "--node-id", node["id"],
            "--user-name", "walker", "--yes",
        )  # fmt: skip
    refused = run_ssh(private_key, "walker", endpoints[0][1], endpoints[0][2], "hostname")
    if refused.returncode != 255:
        raise WalkError("the deleted user still logs in")
    say("delete-user", "walker can no longer log in")

    az.run("batch", "pool", "delete", "--pool-id", POOL_ID, "--yes")
    until(
        "the pool to be gone",
        lambda: az.run("batch", "pool", "show", "--pool-id", POOL_ID, check=False).returncode != 0,
    )
    say("delete-pool", "gone (404)")
    return findings


def _in_hours(hours: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + hours * 3600))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.batch_emulator.walks.az_walk", description=__doc__
    )
    parser.add_argument("--az", required=True, help="the az executable (e.g. .devstack/az-cli/bin/az)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="az-walk-") as tmp:
        work = Path(tmp)
        proc, endpoint = start_batch_emulator(work / "emulator", ssh_network="127.199.0.0/16")
        try:
            key = generate_key(work)
            env = {
                **os.environ,
                "AZURE_CONFIG_DIR": str(work / "az-config"),
                "AZURE_CORE_COLLECT_TELEMETRY": "false",
                "AZURE_BATCH_ACCOUNT": endpoint.account,
                "AZURE_BATCH_ACCESS_KEY": endpoint.key,
                "AZURE_BATCH_ENDPOINT": endpoint.url,
            }
            az = AzCli(args.az, env)
            version = json.loads(az.run("version", "--output", "json").stdout)
            say("az", f"azure-cli {version['azure-cli']}")
            try:
                findings = walk(az, key.public, key.private)
            except WalkError as exc:
                say("FAILED", str(exc))
                return 1
            calls = endpoint.counters()["calls"]
            say("emulator calls", ", ".join(f"{k}={v}" for k, v in sorted(calls.items())))
            for finding in findings:
                say("finding", finding)
            say("done", f"{len(az.calls)} az commands, {len(findings)} finding(s)")
            return 0
        finally:
            proc.stop()


if __name__ == "__main__":
    sys.exit(main())
