"""Instance status JSON as the durable HTTP API answers it, including the `historyEvents` view of a
history."""

from __future__ import annotations

import json
from typing import Any

from devstack.functions_host.durable.protocol import HistoryEventType, parse_time
from devstack.functions_host.durable.store import InstanceRow

E = HistoryEventType
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Terminated"})
# The scheduling side of a task is folded into its completion (FunctionName, ScheduledTime), as the
# real API does.
HIDDEN_EVENTS = {
    E.ORCHESTRATOR_STARTED,
    E.ORCHESTRATOR_COMPLETED,
    E.TASK_SCHEDULED,
    E.SUB_ORCHESTRATION_INSTANCE_CREATED,
}


def api_time(text: str) -> str:
    """The API's time form: seconds precision with a Z (`2024-01-01T12:00:00Z`)."""
    return parse_time(text).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def render_status(
    row: InstanceRow,
    *,
    show_input: bool = True,
    history: list[str] | None = None,
    show_history_output: bool = False,
) -> dict:
    status = {
        "name": row.name,
        "instanceId": row.instance_id,
        "runtimeStatus": row.status,
        "input": parse_json(row.input) if show_input else None,
        "customStatus": parse_json(row.custom_status),
        "output": parse_json(row.output),
        "createdTime": api_time(row.created_time),
        "lastUpdatedTime": api_time(row.last_updated_time),
    }
    if history is not None:
        status["historyEvents"] = history_events([json.loads(t) for t in history], show_history_output)
    return status


def history_events(events: list[dict], show_output: bool) -> list[dict]:
    """The `historyEvents` list: event type names, task completions with their function name."""
    scheduled = {
        e["EventId"]: e
        for e in events
        if e["EventType"] in (E.TASK_SCHEDULED, E.SUB_ORCHESTRATION_INSTANCE_CREATED)
    }
    out = []
    for e in events:
        kind = E(e["EventType"])
        if kind in HIDDEN_EVENTS:
            continue
        item: dict[str, Any] = {"EventType": _type_name(kind), "Timestamp": api_time(e["Timestamp"])}
        if kind == E.EXECUTION_STARTED:
            item["FunctionName"] = e.get("Name")
            if show_output:
                item["Input"] = parse_json(e.get("Input"))
        elif kind in (
            E.TASK_COMPLETED,
            E.TASK_FAILED,
            E.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
            E.SUB_ORCHESTRATION_INSTANCE_FAILED,
        ):
            origin = scheduled.get(e.get("TaskScheduledId"), {})
            item["FunctionName"] = origin.get("Name")
            if origin.get("InstanceId"):
                item["InstanceId"] = origin["InstanceId"]
            if origin:
                item["ScheduledTime"] = api_time(origin["Timestamp"])
            if kind in (E.TASK_COMPLETED, E.SUB_ORCHESTRATION_INSTANCE_COMPLETED):
                if show_output:
                    item["Result"] = parse_json(e.get("Result"))
            else:
                item["Reason"] = e.get("Reason")
                item["Details"] = e.get("Details")
        elif kind == E.TIMER_CREATED:
            item["FireAt"] = e.get("FireAt")
        elif kind == E.TIMER_FIRED:
            item["TimerId"] = e.get("TimerId")
            item["FireAt"] = e.get("FireAt")
        elif kind == E.EVENT_RAISED:
            item["Name"] = e.get("Name")
            if show_output:
                item["Input"] = parse_json(e.get("Input"))
        elif kind == E.EXECUTION_TERMINATED:
            item["Input"] = e.get("Input")
        elif kind == E.EXECUTION_COMPLETED:
            item["OrchestrationStatus"] = e.get("OrchestrationStatus")
            if e.get("OrchestrationStatus") == "Failed":
                item["FailureDetails"] = e.get("FailureDetails")
            if show_output or e.get("OrchestrationStatus") != "Completed":
                item["Result"] = (
                    parse_json(e.get("Result"))
                    if e.get("OrchestrationStatus") == "Completed"
                    else e.get("Result")
                )
        out.append(item)
    return out


def _type_name(kind: E) -> str:
    return "".join(part.capitalize() for part in kind.name.split("_"))
