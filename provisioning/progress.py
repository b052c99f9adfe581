"""Phases, progress counts and outcomes of a provisioning run: custom status, output and status view."""

from __future__ import annotations

from typing import Any

ACCEPTED = "accepted"
CHECKING_POOL = "checking-pool"
SELECTING_IMAGE = "selecting-image"
CREATING_POOL = "creating-pool"
WAITING_FOR_NODES = "waiting-for-nodes"
GRANTING_ACCESS = "granting-access"
RECORDING_CONNECTIONS = "recording-connections"
PUBLISHING = "publishing"
COMPLETED, PARTIAL, FAILED, REJECTED = "completed", "partial", "failed", "rejected"
TERMINAL_PHASES = (COMPLETED, PARTIAL, FAILED, REJECTED)


def progress(
    *,
    target: int,
    ready: int = 0,
    failed: int = 0,
    users_total: int = 0,
    users_granted: int = 0,
) -> dict[str, int]:
    """The counts a caller sees: nodes idle of total, nodes failed, (node, user) grants of total."""
    return {
        "nodesIdle": ready,
        "nodesTotal": target,
        "nodesFailed": failed,
        "usersGranted": users_granted,
        "usersTotal": users_total,
    }


def custom_status(
    phase: str, pool_id: str, counts: dict[str, int], message: str | None = None
) -> dict[str, Any]:
    """The orchestration's custom status: the phase and the counts (never a secret)."""
    status = {"phase": phase, "poolId": pool_id, "progress": counts}
    if message:
        status["message"] = message
    return status


def node_outcomes(failures: list[dict[str, Any]], problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The nodes that need attention: partial (some users) or failed (none) grants, and unusable nodes (never
    became ready). Nodes that got every user are counted, not listed."""
    outcomes = list(failures)
    for problem in problems:
        outcomes.append(
            {
                "nodeId": problem["nodeId"],
                "outcome": "unusable",
                "state": problem["state"],
                "reason": problem["reason"],
            }
        )
    return sorted(outcomes, key=lambda o: o["nodeId"] or "")


def grant_failures(jobs: list[dict[str, Any]], failed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per node with a failed (node, user): `partial` (some of its users granted) or `failed` (none), with the
    users granted and each failed user's error. `jobs` are `{"nodeId", "users": [names]}`."""
    users_of = {j["nodeId"]: j["users"] for j in jobs}
    errors: dict[str, dict[str, Any]] = {}
    for item in failed:
        errors.setdefault(item["nodeId"], {})[item["user"]] = item["error"]
    outcomes = []
    for node_id, by_user in sorted(errors.items()):
        ok = sorted(set(users_of.get(node_id, ())) - set(by_user))
        outcomes.append({"nodeId": node_id, "outcome": "partial" if ok else "failed", "usersGranted": ok,
                         "errors": dict(sorted(by_user.items()))})  # fmt: skip
    return outcomes


def summarize_outcome(
    *,
    request: dict[str, Any],
    granted: dict[str, Any],
    problems: list[dict[str, Any]],
    records_written: int = 0,
    image: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    status_url: str | None = None,
    pool_deleted: bool = False,
    target: int | None = None,
    allocation_error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The orchestration output: completed when at least the requested nodes granted every user, partial when
    some (node, user) got access (or the pool got fewer nodes than asked: `error` names why), failed when none
    did or the run stopped with an error. `granted` is `{"nodes": nodes granted on, "granted": (node, user)
    pairs granted, "failures": grant_failures(...)}`; `target` defaults to the request's node count."""
    if target is None:
        target = request["nodes"]["dedicated"] + request["nodes"]["spot"]
    failures = granted.get("failures") or []
    nodes = node_outcomes(failures, problems)
    attempted = granted.get("nodes", 0)
    users_granted = granted.get("granted", 0)
    full = attempted - len(failures)
    if error or (users_granted == 0 and target > 0):
        outcome = FAILED
        if not error:
            error = allocation_error or {
                "code": "NoAccessGranted",
                "message": "no user could be added to any node",
            }
    elif full >= target and not failures and not problems and not allocation_error:
        outcome = COMPLETED
    else:
        outcome = PARTIAL
        error = allocation_error
    counts = progress(
        target=target,
        ready=attempted,
        failed=len(problems),
        users_total=target * len(request["users"]),
        users_granted=users_granted,
    )
    counts["records"] = records_written
    return {
        "poolId": request["poolId"],
        "requestId": request["requestId"],
        "outcome": outcome,
        "error": error,
        "image": image,
        "progress": counts,
        "nodes": nodes,
        "poolDeleted": pool_deleted,
        "statusUrl": status_url,
    }


def phase_of(request_entry: dict[str, Any] | None, status: dict[str, Any] | None) -> str:
    """The phase a caller sees, from the request's status entry and the orchestration status (may be None)."""
    if request_entry and request_entry.get("state") == REJECTED:
        return REJECTED
    if not status or not status.get("runtimeStatus"):
        return ACCEPTED
    runtime = status["runtimeStatus"]
    if runtime == "Completed":
        output = status.get("output") or {}
        return output.get("outcome", COMPLETED) if isinstance(output, dict) else COMPLETED
    if runtime in ("Failed", "Terminated", "Canceled"):
        return FAILED
    custom = status.get("customStatus")
    return custom.get("phase", ACCEPTED) if isinstance(custom, dict) else ACCEPTED


def pool_view(
    pool_id: str,
    request_entry: dict[str, Any] | None,
    status: dict[str, Any] | None,
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    """GET /api/pools/{poolId}: phase, progress, outcome and records."""
    phase = phase_of(request_entry, status)
    output = (status or {}).get("output")
    custom = (status or {}).get("customStatus")
    view: dict[str, Any] = {
        "poolId": pool_id,
        "requestId": (request_entry or {}).get("requestId"),
        "instanceId": (request_entry or {}).get("instanceId"),
        "phase": phase,
        "runtimeStatus": (status or {}).get("runtimeStatus"),
        "progress": None,
        "outcome": None,
        "records": records,
    }
    if isinstance(output, dict) and "outcome" in output:
        view["progress"] = output.get("progress")
        view["outcome"] = output
    elif isinstance(custom, dict):
        view["progress"] = custom.get("progress")
    if phase == FAILED and not isinstance(output, dict):
        view["outcome"] = {
            "outcome": FAILED,
            "error": {"code": "OrchestrationFailed", "message": str(output or "")},
        }
    if request_entry:
        if request_entry.get("errors"):
            view["errors"] = request_entry["errors"]
        if request_entry.get("warnings"):
            view["warnings"] = request_entry["warnings"]
        view["receivedAt"] = request_entry.get("receivedAt")
        if request_entry.get("latestRejection"):
            view["latestRejection"] = request_entry["latestRejection"]
    if status:
        view["createdTime"] = status.get("createdTime")
        view["lastUpdatedTime"] = status.get("lastUpdatedTime")
    return view
