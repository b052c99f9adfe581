"""The orchestrator protocol spoken with the SDK: history events as the host writes them, the context JSON
an orchestrator handle receives, and its answer (schema V2 action lists, or a failure) read back."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType

__all__ = [
    "ActionType",
    "HistoryEventType",
    "OrchestratorAnswer",
    "OUT_OF_PROC_MARKER",
    "build_context_json",
    "event",
    "event_text",
    "flatten_actions",
    "format_time",
    "parse_time",
    "run_orchestrator",
    "utcnow",
]

E = HistoryEventType
OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Schema V2 action lists; upperSchemaVersionNew without the timer-duration fields keeps the SDK on V2 rules.
UPPER_SCHEMA_VERSION = 1
UPPER_SCHEMA_VERSION_NEW = 2
COMPOUND_ACTIONS = (ActionType.WHEN_ANY, ActionType.WHEN_ALL)


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`, the form history events and the SDK use."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(TIMESTAMP_FORMAT)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (with `Z` or an offset; naive means UTC) as an aware UTC datetime."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def event(event_type: IntEnum | int, timestamp: datetime, *, event_id: int = -1, **fields: Any) -> dict:
    """A history event as the extension serializes it (the SDK reads EventType/EventId/IsPlayed/Timestamp)."""
    return {
        "EventType": int(event_type),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_time(timestamp),
        **fields,
    }


def event_text(history_event: dict, *, played: bool) -> str:
    """Compact JSON of an event, with IsPlayed set (true once it belongs to a committed episode)."""
    return json.dumps({**history_event, "IsPlayed": played}, separators=(",", ":"))


def build_context_json(
    *,
    instance_id: str,
    played: Sequence[str],
    new: Sequence[str],
    input_value: Any,
    parent_instance_id: str | None,
) -> str:
    """The context JSON text an orchestrator handle takes: `played` and `new` are event JSON texts.

    Built by joining cached event texts, so a replay costs the SDK's parse, not a re-serialization here."""
    head = json.dumps(
        {
            "instanceId": instance_id,
            "isReplaying": bool(played),
            "parentInstanceId": parent_instance_id,
            "input": input_value,
            "upperSchemaVersion": UPPER_SCHEMA_VERSION,
            "upperSchemaVersionNew": UPPER_SCHEMA_VERSION_NEW,
        },
        separators=(",", ":"),
    )
    history = ",".join(_chain(played, new))
    return f'{head[:-1]},"history":[{history}]}}'


def _chain(*parts: Iterable[str]) -> Iterable[str]:
    for part in parts:
        yield from part


def flatten_actions(actions: list) -> list[dict]:
    """The leaf actions of an answer's action lists, depth-first through WhenAll/WhenAny compounds.

    This is the order in which the SDK gives task ids to newly yielded leaves."""
    leaves: list[dict] = []

    def walk(items: list) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
            elif item.get("actionType") in COMPOUND_ACTIONS:
                walk(item.get("compoundActions") or [])
            else:
                leaves.append(item)

    walk(actions)
    return leaves


@dataclass
class OrchestratorAnswer:
    """What one orchestrator episode answered: its cumulative leaf actions and state, or its failure."""

    is_done: bool = False
    leaves: list[dict] = field(default_factory=list)
    output: Any = None
    custom_status: Any = None
    error: str | None = None
    details: str = ""

    @property
    def failed(self) -> bool:
        return self.error is not None


def run_orchestrator(handle: Callable[[str], str], context_json: str) -> OrchestratorAnswer:
    """Call the SDK handle and read its answer; an exception becomes a failed answer.

    The SDK raises `Exception("msg\\n\\n$OutOfProcData$:{state}")` when the orchestrator raises: the message
    is the part before the marker, the state (custom status) the JSON after it. An exception with a
    `details` attribute (the runtime's stack trace) gives the details; else its own traceback does."""
    try:
        text = handle(context_json)
    except Exception as exc:  # the user's orchestrator (or the SDK replaying it) failed
        message, state = _split_failure(str(exc))
        cause = exc.__cause__ or exc
        details = getattr(exc, "details", None) or "".join(
            traceback.format_exception(type(cause), cause, cause.__traceback__)
        )
        return OrchestratorAnswer(
            is_done=True,
            error=message or type(cause).__name__,
            details=details,
            custom_status=(state or {}).get("customStatus"),
        )
    try:
        state = json.loads(text)
    except (TypeError, ValueError) as exc:
        return OrchestratorAnswer(is_done=True, error=f"orchestrator answer is not JSON: {exc}")
    return OrchestratorAnswer(
        is_done=bool(state.get("isDone")),
        leaves=flatten_actions(state.get("actions") or []),
        output=state.get("output"),
        custom_status=state.get("customStatus"),
    )


def _split_failure(text: str) -> tuple[str, dict | None]:
    message, marker, state_text = text.rpartition(OUT_OF_PROC_MARKER)
    if not marker:
        return text, None
    try:
        return message, json.loads(state_text)
    except ValueError:
        return message, None
