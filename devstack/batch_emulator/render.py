"""The JSON the service returns for pools, nodes, node counts and remote login settings (camelCase, timestamps
with seven fractional digits, absent values omitted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import isodate

from devstack.batch_emulator.models import Node, NodeState, Pool

NODE_AGENT_VERSION = "1.12.8"
START_TASK_FAILURE_MESSAGE = "The task exited with an exit code representing a failure"


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with seven fractional digits, as the service writes them."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def duration(value: timedelta) -> str:
    return isodate.duration_isoformat(value)


def pool_url(base_url: str, pool_id: str) -> str:
    return f"{base_url}/pools/{quote(pool_id, safe='')}"


def pool_json(pool: Pool, base_url: str) -> dict[str, Any]:
    body = pool.spec.body
    data: dict[str, Any] = {"id": pool.id}
    if body.get("displayName") is not None:
        data["displayName"] = body["displayName"]
    data.update(
        {
            "url": pool_url(base_url, pool.id),
            "eTag": pool.etag,
            "lastModified": timestamp(pool.last_modified),
            "creationTime": timestamp(pool.creation_time),
            "state": str(pool.state),
            "stateTransitionTime": timestamp(pool.state_transition_time),
            "allocationState": str(pool.allocation_state),
            "allocationStateTransitionTime": timestamp(pool.allocation_state_transition_time),
            "vmSize": pool.spec.vm_size,
            "virtualMachineConfiguration": body["virtualMachineConfiguration"],
            "resizeTimeout": duration(pool.resize_timeout),
        }
    )
    if pool.resize_errors:
        data["resizeErrors"] = [
            {
                "code": e.code,
                "message": e.message,
                **({"values": [{"name": k, "value": v} for k, v in e.values]} if e.values else {}),
            }
            for e in pool.resize_errors
        ]
    data.update(
        {
            "currentDedicatedNodes": pool.current_dedicated_nodes,
            "currentLowPriorityNodes": pool.current_low_priority_nodes,
            "targetDedicatedNodes": pool.target_dedicated_nodes,
            "targetLowPriorityNodes": pool.target_low_priority_nodes,
            "enableAutoScale": False,
            "enableInterNodeCommunication": bool(body.get("enableInterNodeCommunication", False)),
        }
    )
    if body.get("networkConfiguration") is not None:
        data["networkConfiguration"] = canonical_enums(body["networkConfiguration"])
    if pool.spec.start_task is not None:
        data["startTask"] = start_task_json(pool)
    data["taskSlotsPerNode"] = int(body.get("taskSlotsPerNode") or 1)
    data["taskSchedulingPolicy"] = canonical_enums(
        body.get("taskSchedulingPolicy") or {"nodeFillType": "spread"}
    )
    if body.get("metadata"):
        data["metadata"] = body["metadata"]
    return data


# Enum-valued properties the emulator echoes from a request; the service answers with its own spelling of the
# value (lower camel case), whatever casing the client sent.
ENUM_PROPERTIES = frozenset({"protocol", "access", "scope", "elevationLevel", "nodeFillType"})


def canonical_enums(value: Any) -> Any:
    """A copy of request JSON with the enum properties above in the service's casing ("TCP" -> "tcp")."""
    if isinstance(value, dict):
        return {
            k: (v.lower() if k in ENUM_PROPERTIES and isinstance(v, str) else canonical_enums(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [canonical_enums(v) for v in value]
    return value


def start_task_json(pool: Pool) -> dict[str, Any]:
    task = pool.spec.start_task
    assert task is not None
    return {
        **canonical_enums(task.body),
        "maxTaskRetryCount": task.max_task_retry_count,
        "waitForSuccess": task.wait_for_success,
    }


def node_json(pool: Pool, node: Node, base_url: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": node.id,
        "url": f"{pool_url(base_url, pool.id)}/nodes/{node.id}",
        "state": str(node.state),
        "schedulingState": "enabled",
        "stateTransitionTime": timestamp(node.state_transition_time),
    }
    if node.last_boot_time is not None:
        data["lastBootTime"] = timestamp(node.last_boot_time)
    data.update(
        {
            "allocationTime": timestamp(node.allocation_time),
            "ipAddress": node.ip_address,
            "affinityId": f"TVM:{node.id}",
            "vmSize": pool.spec.vm_size,
            "totalTasksRun": 0,
            "runningTasksCount": 1 if node.state == NodeState.RUNNING else 0,
            "runningTaskSlotsCount": 1 if node.state == NodeState.RUNNING else 0,
            "totalTasksSucceeded": 0,
            "isDedicated": node.is_dedicated,
        }
    )
    if pool.spec.start_task is not None:
        data["startTask"] = start_task_json(pool)
    info = node.start_task_info
    if info is not None:
        task_info: dict[str, Any] = {"state": info.state, "startTime": timestamp(info.start_time)}
        if info.end_time is not None:
            task_info["endTime"] = timestamp(info.end_time)
        if info.exit_code is not None:
            task_info["exitCode"] = info.exit_code
        if info.result == "failure":
            task_info["failureInfo"] = {
                "category": "usererror",
                "code": "FailureExitCode",
                "message": START_TASK_FAILURE_MESSAGE,
                "details": [{"name": "Message", "value": START_TASK_FAILURE_MESSAGE}],
            }
        task_info["retryCount"] = info.retry_count
        if info.last_retry_time is not None:
            task_info["lastRetryTime"] = timestamp(info.last_retry_time)
        if info.result is not None:
            task_info["result"] = info.result
        data["startTaskInfo"] = task_info
    if node.errors:
        data["errors"] = [
            {
                "code": e.code,
                "message": e.message,
                **({"errorDetails": [{"name": k, "value": v} for k, v in e.details]} if e.details else {}),
            }
            for e in node.errors
        ]
    if node.endpoints:
        data["endpointConfiguration"] = {
            "inboundEndpoints": [
                {
                    "name": e.name,
                    "protocol": e.protocol,
                    "publicIPAddress": e.public_ip,
                    "publicFQDN": public_fqdn(pool),
                    "frontendPort": e.frontend_port,
                    "backendPort": e.backend_port,
                }
                for e in node.endpoints
            ]
        }
    data["nodeAgentInfo"] = {"version": NODE_AGENT_VERSION, "lastUpdateTime": timestamp(node.allocation_time)}
    reference = dict(pool.spec.body["virtualMachineConfiguration"]["imageReference"])
    reference["exactVersion"] = (
        "1.0.0" if reference.get("version", "latest") == "latest" else reference["version"]
    )
    data["virtualMachineInfo"] = {"imageReference": reference}
    return data


def public_fqdn(pool: Pool) -> str:
    """A name for the pool's public address; clients should use publicIPAddress (the name does not
    resolve)."""
    return f"{pool.id.lower().replace('_', '-')}.pools.batch-emulator.invalid"


def node_counts_json(pool: Pool) -> dict[str, Any]:
    names = {
        "creating": "creating",
        "starting": "starting",
        "waitingforstarttask": "waitingForStartTask",
        "idle": "idle",
        "running": "running",
        "starttaskfailed": "startTaskFailed",
        "unusable": "unusable",
        "offline": "offline",
        "leavingpool": "leavingPool",
    }
    fields = (
        "creating",
        "idle",
        "offline",
        "preempted",
        "rebooting",
        "reimaging",
        "running",
        "starting",
        "startTaskFailed",
        "leavingPool",
        "unknown",
        "unusable",
        "waitingForStartTask",
        "deallocated",
        "deallocating",
        "upgradingOS",
    )

    def counts(dedicated: bool) -> dict[str, int]:
        result = dict.fromkeys(fields, 0)
        total = 0
        for node in pool.nodes.values():
            if node.is_dedicated == dedicated:
                result[names[str(node.state)]] += 1
                total += 1
        result["total"] = total
        return result

    return {"poolId": pool.id, "dedicated": counts(True), "lowPriority": counts(False)}


def remote_login_json(ip: str, port: int) -> dict[str, Any]:
    return {"remoteLoginIPAddress": ip, "remoteLoginPort": port}
