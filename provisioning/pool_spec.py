"""The Batch pool a request asks for (create-pool JSON) and the same-spec test for PoolExists."""

from __future__ import annotations

import hashlib
import json
from typing import Any

SPEC_METADATA = "batch-ssh-access-spec"
REQUEST_METADATA = "batch-ssh-access-request"
SSH_NAT_POOL = "ssh"
SSH_BACKEND_PORT = 22
FIRST_NSG_PRIORITY = 150
LAST_NSG_PRIORITY = 4096
RESIZE_TIMEOUT = "PT15M"


def pool_spec_fingerprint(request: dict[str, Any]) -> str:
    """A digest of what defines the pool (size, counts, image as asked, start task, SSH)."""
    spec = {
        "vmSize": request["vmSize"].lower(),
        "nodes": request["nodes"],
        "image": request["image"],
        "startTask": request.get("startTask"),
        "ssh": request["ssh"],
    }
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def nsg_rules(prefixes: list[str]) -> list[dict[str, Any]]:
    """Allow each prefix, deny everything else; no rules at all when any source may connect."""
    if not prefixes or prefixes == ["*"]:
        return []
    rules = [
        {
            "priority": FIRST_NSG_PRIORITY + i,
            "access": "allow",
            "sourceAddressPrefix": p,
            "sourcePortRanges": ["*"],
        }
        for i, p in enumerate(prefixes)
    ]
    rules.append(
        {
            "priority": LAST_NSG_PRIORITY,
            "access": "deny",
            "sourceAddressPrefix": "*",
            "sourcePortRanges": ["*"],
        }
    )
    return rules


def _start_task(task: dict[str, Any] | None) -> dict[str, Any] | None:
    if not task:
        return None
    return {
        "commandLine": task["commandLine"],
        "userIdentity": {
            "autoUser": {"scope": "pool", "elevationLevel": "admin" if task.get("elevated") else "nonadmin"}
        },
        "waitForSuccess": task.get("waitForSuccess", True),
        "maxTaskRetryCount": task.get("maxRetries", 0),
        "environmentSettings": [
            {"name": k, "value": v} for k, v in sorted((task.get("environment") or {}).items())
        ],
    }


def build_pool_spec(request: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """The create-pool body (service JSON) for a validated request and the chosen image."""
    ports = request["ssh"]["frontendPortRange"]
    spec: dict[str, Any] = {
        "id": request["poolId"],
        "vmSize": request["vmSize"],
        "virtualMachineConfiguration": {
            "imageReference": dict(image["imageReference"]),
            "nodeAgentSKUId": image["nodeAgentSkuId"],
        },
        "targetDedicatedNodes": request["nodes"]["dedicated"],
        "targetLowPriorityNodes": request["nodes"]["spot"],
        "resizeTimeout": RESIZE_TIMEOUT,
        "networkConfiguration": {
            "endpointConfiguration": {
                "inboundNATPools": [
                    {
                        "name": SSH_NAT_POOL,
                        "protocol": "tcp",
                        "backendPort": SSH_BACKEND_PORT,
                        "frontendPortRangeStart": ports["start"],
                        "frontendPortRangeEnd": ports["end"],
                        "networkSecurityGroupRules": nsg_rules(request["ssh"]["allowedSourcePrefixes"]),
                    }
                ]
            }
        },
        "metadata": [
            {"name": SPEC_METADATA, "value": pool_spec_fingerprint(request)},
            {"name": REQUEST_METADATA, "value": request["requestId"]},
        ],
    }
    start_task = _start_task(request.get("startTask"))
    if start_task:
        spec["startTask"] = start_task
    return spec


def existing_pool_difference(pool: dict[str, Any], request: dict[str, Any]) -> str | None:
    """None when an existing pool (service JSON) was created for this same spec, else what differs."""
    metadata = {m.get("name"): m.get("value") for m in pool.get("metadata") or []}
    if metadata.get(SPEC_METADATA) == pool_spec_fingerprint(request):
        return None
    differences = []
    if (pool.get("vmSize") or "").lower() != request["vmSize"].lower():
        differences.append(f"vmSize is {pool.get('vmSize')}, not {request['vmSize']}")
    targets = (pool.get("targetDedicatedNodes") or 0, pool.get("targetLowPriorityNodes") or 0)
    wanted = (request["nodes"]["dedicated"], request["nodes"]["spot"])
    if targets != wanted:
        differences.append(
            f"target nodes are {targets[0]} dedicated + {targets[1]} spot, not {wanted[0]} + {wanted[1]}"
        )
    if SPEC_METADATA not in metadata:
        differences.append("it was not created by this app")
    elif not differences:
        differences.append("its image, start task or SSH settings differ")
    return "; ".join(differences)


def ssh_access_problem(pool: dict[str, Any]) -> dict[str, str] | None:
    """Why access cannot be granted on an existing pool (service JSON), or None: it must be active, run Linux
    and have an inbound NAT pool for backend port 22."""
    pool_id = pool.get("id")
    if (pool.get("state") or "").lower() == "deleting":
        return {"code": "PoolBeingDeleted", "message": f"pool {pool_id} is being deleted"}
    vm = pool.get("virtualMachineConfiguration") or {}
    agent = str(vm.get("nodeAgentSKUId") or vm.get("nodeAgentSkuId") or "").lower()
    if agent.startswith("batch.node.windows"):
        return {
            "code": "PoolNotLinux",
            "message": f"pool {pool_id} runs Windows; this app grants SSH access on Linux pools only",
        }
    nat_pools = ((pool.get("networkConfiguration") or {}).get("endpointConfiguration") or {}).get(
        "inboundNATPools"
    ) or []
    if not any(int(p.get("backendPort") or 0) == SSH_BACKEND_PORT for p in nat_pools):
        return {
            "code": "PoolHasNoSshEndpoint",
            "message": (
                f"pool {pool_id} has no inbound NAT pool for port 22, so its nodes cannot be reached over "
                "SSH, and a pool's network configuration cannot be changed after it is created. Create a "
                "pool with an SSH endpoint instead (POST /api/pools does), or recreate this one with an "
                "inbound NAT pool for backend port 22."
            ),
        }
    return None
