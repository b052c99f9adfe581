"""One orchestration episode, decided without I/O: order the new events, run the orchestrator over its
history, check its actions against what earlier episodes scheduled, and give every new task the id the SDK
gave it (including the retry timers and re-attempts the host creates for *_with_retry calls).

Task-id rules mirrored from the SDK: a newly yielded leaf takes the next id, depth-first through compound
actions (external-event waits take none; continue_as_new takes one). A *_with_retry task's attempt that
fails takes the next id for its retry timer; when that timer fires and attempts remain, the next id is the
new attempt; after the last attempt's timer fires the failure surfaces. Such "allocating" events never
resume user code, so placing them first in an episode's new events makes their ids precede any new yield.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devstack.functions_host.durable.protocol import (
    ActionType,
    HistoryEventType,
    build_context_json,
    event,
    event_text,
    format_time,
    run_orchestrator,
)

E = HistoryEventType
A = ActionType
ACTIVITY_CALLS = (A.CALL_ACTIVITY, A.CALL_ACTIVITY_WITH_RETRY)
SUB_ORCHESTRATOR_CALLS = (A.CALL_SUB_ORCHESTRATOR, A.CALL_SUB_ORCHESTRATOR_WITH_RETRY)
RETRY_CALLS = (A.CALL_ACTIVITY_WITH_RETRY, A.CALL_SUB_ORCHESTRATOR_WITH_RETRY)
FAILURES = (E.TASK_FAILED, E.SUB_ORCHESTRATION_INSTANCE_FAILED)
COMPLETIONS = (
    E.TASK_COMPLETED,
    E.TASK_FAILED,
    E.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
    E.SUB_ORCHESTRATION_INSTANCE_FAILED,
)
UNSUPPORTED = {
    A.CALL_ENTITY: "durable entities (call_entity)",
    A.SIGNAL_ENTITY: "durable entities (signal_entity)",
    A.CALL_HTTP: "durable HTTP calls (call_http)",
}
KIND_WORDS = {
    A.CALL_ACTIVITY: "activity",
    A.CALL_ACTIVITY_WITH_RETRY: "activity (with retry)",
    A.CALL_SUB_ORCHESTRATOR: "sub-orchestration",
    A.CALL_SUB_ORCHESTRATOR_WITH_RETRY: "sub-orchestration (with retry)",
    A.CREATE_TIMER: "timer",
    A.WAIT_FOR_EXTERNAL_EVENT: "wait for external event",
    A.CONTINUE_AS_NEW: "continue_as_new",
}

Orchestrator = Callable[[str], str]


INSTANCE_ID_MAX = 256
_BAD_ID_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f]")


def validate_instance_id(instance_id: str) -> None:
    """ValueError naming the rule an instance id breaks (the Azure Storage provider's rules)."""
    if not instance_id or not instance_id.strip():
        raise ValueError("instance_id: must not be empty")
    if len(instance_id) > INSTANCE_ID_MAX:
        raise ValueError(f"instance_id: must be at most {INSTANCE_ID_MAX} characters, got {len(instance_id)}")
    if _BAD_ID_CHARS.search(instance_id):
        raise ValueError("instance_id: must not contain '/', '\\', '#', '?' or control characters")


def missing_function_message(name: str, kind: str) -> str:
    return f"The function '{name}' doesn't exist, is disabled, or is not an {kind} function."


@dataclass
class RetryGroup:
    """A *_with_retry call in flight: which attempt it is on and whether it waits for its retry timer."""

    action_type: int
    name: str
    input: str | None
    instance_id: str | None
    max_attempts: int
    interval_ms: int
    attempts: int = 1
    waiting_timer: bool = False


@dataclass
class Book:
    """Per-instance bookkeeping that the history alone does not give cheaply; saved with every episode."""

    next_id: int = 0
    leaves: list[list] = field(default_factory=list)  # [actionType, name or None, task id or None]
    retries: dict[int, RetryGroup] = field(default_factory=dict)  # by the id the group waits on
    pending_timers: dict[int, str] = field(default_factory=dict)  # timer id -> fireAt, not yet fired

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def copy(self) -> Book:
        return Book(
            next_id=self.next_id,
            leaves=list(self.leaves),
            retries={k: copy.copy(v) for k, v in self.retries.items()},
            pending_timers=dict(self.pending_timers),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "next_id": self.next_id,
                "leaves": self.leaves,
                "retries": {str(k): asdict(v) for k, v in self.retries.items()},
                "pending_timers": {str(k): v for k, v in self.pending_timers.items()},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> Book:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            next_id=data["next_id"],
            leaves=data["leaves"],
            retries={int(k): RetryGroup(**v) for k, v in data["retries"].items()},
            pending_timers={int(k): v for k, v in data["pending_timers"].items()},
        )


@dataclass
class ChildStart:
    """A sub-orchestration to create in the same commit as the episode that scheduled it."""

    task_id: int
    instance_id: str
    name: str
    input: str | None  # the JSON text the child's get_input() decodes


@dataclass
class EpisodeInput:
    instance_id: str
    execution_id: str
    name: str
    input_value: Any  # what the context's `input` field carries (the decoded stored input)
    parent_instance_id: str | None
    book: Book
    played: list[str]  # committed history, as event JSON texts
    messages: list[dict]  # new events from the inbox, in arrival order
    now: datetime
    activities: frozenset[str]
    orchestrators: frozenset[str]


@dataclass
class Episode:
    """What an episode decided; committed atomically by the engine."""

    book: Book
    events: list[dict] = field(default_factory=list)  # appended to the history, in order
    status: str = "Running"
    output: str | None = None  # JSON text
    custom_status: str | None = None  # JSON text
    failure: tuple[str, str] | None = None  # (reason, details)
    failure_kind: str = ""  # for log lines, which never carry the (possibly data-bearing) message
    activities: list[tuple[int, str, str | None]] = field(default_factory=list)  # (task id, name, input)
    timers: list[tuple[int, str]] = field(default_factory=list)  # (timer id, fireAt)
    cancelled_timers: list[int] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    self_messages: list[dict] = field(default_factory=list)  # events delivered to this instance next
    continue_input: str | None = None  # JSON text, when it continued as new
    continued: bool = False
    scheduled: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in ("Completed", "Failed", "Terminated")

    @property
    def outcome(self) -> str:
        if self.status == "Running":
            return f"running (+{self.scheduled} tasks)" if self.scheduled else "running"
        if self.failure_kind:
            return f"{self.status.lower()} ({self.failure_kind})"
        return self.status.lower()


def plan_episode(inp: EpisodeInput, handle: Orchestrator | None) -> Episode:
    """Decide one episode. Pure apart from calling `handle` (the SDK) once.

    An error of the engine itself fails the instance (with that error) instead of leaving it stuck."""
    try:
        return _Planner(inp, handle).run()
    except Exception as exc:  # a defect here must not wedge the instance
        planner = _Planner(inp, None)
        planner.ep.events.append(event(E.ORCHESTRATOR_STARTED, inp.now))
        return planner._fail(
            f"the local durable engine could not run this episode: {exc!r}", "", "engine error"
        )


class _Planner:
    def __init__(self, inp: EpisodeInput, handle: Orchestrator | None) -> None:
        self.inp = inp
        self.handle = handle
        self.now = inp.now
        self.ep = Episode(book=inp.book.copy())
        self.book = self.ep.book
        self.decisions: list[dict] = []

    def run(self) -> Episode:
        inp, ep = self.inp, self.ep
        started = [m for m in inp.messages if m["EventType"] == E.EXECUTION_STARTED]
        terminated = [m for m in inp.messages if m["EventType"] == E.EXECUTION_TERMINATED]
        others = [
            m for m in inp.messages if m["EventType"] not in (E.EXECUTION_STARTED, E.EXECUTION_TERMINATED)
        ]
        ep.events.append(event(E.ORCHESTRATOR_STARTED, self.now))
        if terminated:
            return self._terminate(started, terminated[0])
        allocating, rest = self._order(others)
        new_events = started + allocating + rest
        ep.events.extend(new_events)
        if self.handle is None:
            return self._fail(missing_function_message(inp.name, "orchestrator"), "", "unknown orchestrator")
        context = build_context_json(
            instance_id=inp.instance_id,
            played=inp.played,
            new=[event_text(e, played=False) for e in ep.events],
            input_value=inp.input_value,
            parent_instance_id=inp.parent_instance_id,
        )
        answer = run_orchestrator(self.handle, context)
        ep.custom_status = _json_or_none(answer.custom_status)
        if answer.failed:
            return self._fail(answer.error or "", answer.details, "orchestrator raised")
        problem = self._check_replay(answer.leaves)
        if problem:
            return self._fail(problem, "", "non-deterministic")
        problem = self._schedule_new(answer.leaves[len(inp.book.leaves) :])
        if problem:
            return self._fail(problem, "", "unsupported action")
        ep.events.extend(self.decisions)
        if ep.continued and answer.is_done:
            ep.status = "ContinuedAsNew"
            ep.events.append(
                event(
                    E.EXECUTION_COMPLETED,
                    self.now,
                    OrchestrationStatus="ContinuedAsNew",
                    Result=ep.continue_input,
                )
            )
        elif answer.is_done:
            ep.status = "Completed"
            ep.output = _json_or_none(answer.output) if answer.output is not None else None
            ep.events.append(
                event(E.EXECUTION_COMPLETED, self.now, OrchestrationStatus="Completed", Result=ep.output)
            )
        ep.events.append(event(E.ORCHESTRATOR_COMPLETED, self.now))
        return ep

    # -- new events -------------------------------------------------------------------------------

    def _order(self, messages: list[dict]) -> tuple[list[dict], list[dict]]:
        """Split new events into the retry steps that allocate task ids (first) and the rest."""
        allocating: list[dict] = []
        rest: list[dict] = []
        book = self.book
        for m in messages:
            kind = m["EventType"]
            if kind == E.TIMER_FIRED:
                book.pending_timers.pop(m.get("TimerId"), None)
            key = (
                m.get("TaskScheduledId")
                if kind in COMPLETIONS
                else m.get("TimerId")
                if kind == E.TIMER_FIRED
                else None
            )
            group = book.retries.pop(key, None) if key is not None else None
            if group is None:
                rest.append(m)
            elif kind in FAILURES and not group.waiting_timer:
                timer_id = book.take_id()
                group.waiting_timer = True
                book.retries[timer_id] = group
                fire_at = format_time(self.now + timedelta(milliseconds=group.interval_ms))
                self._add_timer(timer_id, fire_at)
                allocating.append(m)
            elif kind == E.TIMER_FIRED and group.waiting_timer:
                if group.attempts >= group.max_attempts:
                    rest.append(m)  # the last attempt's failure surfaces now
                else:
                    attempt_id = book.take_id()
                    group.attempts += 1
                    group.waiting_timer = False
                    book.retries[attempt_id] = group
                    self._schedule_call(
                        group.action_type, attempt_id, group.name, group.input, group.instance_id
                    )
                    allocating.append(m)
            else:
                rest.append(m)  # the attempt succeeded
        return allocating, rest

    # -- replay check -----------------------------------------------------------------------------

    def _check_replay(self, leaves: list[dict]) -> str | None:
        """Non-determinism: the orchestrator's earlier actions must be what the history recorded."""
        for index, (action_type, name, task_id) in enumerate(self.inp.book.leaves):
            what = _describe(action_type, name, task_id)
            if index >= len(leaves):
                return (
                    f"Non-Deterministic workflow detected: a previous execution of this orchestration "
                    f"scheduled {what}, but the current replay execution hasn't (yet?) scheduled it. "
                    "Was a change made to the orchestrator code after this instance had already started "
                    "running? Orchestrator code must be deterministic."
                )
            leaf = leaves[index]
            now_type, now_name = leaf.get("actionType"), _leaf_name(leaf)
            if now_type != action_type or now_name != name:
                return (
                    f"Non-Deterministic workflow detected: the history records {what}, but on replay the "
                    f"orchestrator scheduled {_describe(now_type, now_name, task_id)} at that point. "
                    "Was a change made to the orchestrator code (or to state it reads) after this instance "
                    "had already started running? Orchestrator code must be deterministic."
                )
            if (
                action_type == A.CREATE_TIMER
                and leaf.get("isCanceled")
                and task_id in self.book.pending_timers
            ):
                del self.book.pending_timers[task_id]
                self.ep.cancelled_timers.append(task_id)
        return None

    # -- new actions ------------------------------------------------------------------------------

    def _schedule_new(self, leaves: list[dict]) -> str | None:
        book = self.book
        for leaf in leaves:
            action_type = leaf.get("actionType")
            name = _leaf_name(leaf)
            task_id: int | None = None
            if action_type in UNSUPPORTED:
                return f"{UNSUPPORTED[action_type]} are not supported by the local durable engine"
            if action_type in ACTIVITY_CALLS or action_type in SUB_ORCHESTRATOR_CALLS:
                task_id = book.take_id()
                self._schedule_call(action_type, task_id, name, leaf.get("input"), leaf.get("instanceId"))
                if action_type in RETRY_CALLS:
                    options = leaf.get("retryOptions") or {}
                    book.retries[task_id] = RetryGroup(
                        action_type=action_type,
                        name=name,
                        input=leaf.get("input"),
                        instance_id=leaf.get("instanceId"),
                        max_attempts=int(options.get("maxNumberOfAttempts") or 1),
                        interval_ms=int(options.get("firstRetryIntervalInMilliseconds") or 1),
                    )
            elif action_type == A.CREATE_TIMER:
                task_id = book.take_id()
                self._add_timer(task_id, leaf["fireAt"], cancelled=bool(leaf.get("isCanceled")))
            elif action_type == A.CONTINUE_AS_NEW:
                task_id = book.take_id()
                self.ep.continued = True
                self.ep.continue_input = leaf.get("input")
            elif action_type != A.WAIT_FOR_EXTERNAL_EVENT:
                return f"unknown orchestrator action type {action_type!r}"
            book.leaves.append([action_type, name, task_id])
        return None

    def _schedule_call(
        self, action_type: int, task_id: int, name: str, input_text: str | None, instance_id: str | None
    ) -> None:
        ep = self.ep
        ep.scheduled += 1
        if action_type in ACTIVITY_CALLS:
            self.decisions.append(
                event(E.TASK_SCHEDULED, self.now, event_id=task_id, Name=name, Input=input_text)
            )
            if name in self.inp.activities:
                ep.activities.append((task_id, name, input_text))
            else:
                ep.self_messages.append(
                    event(
                        E.TASK_FAILED,
                        self.now,
                        TaskScheduledId=task_id,
                        Reason=missing_function_message(name, "activity"),
                        Details="",
                    )
                )
            return
        child_id = instance_id or f"{self.inp.execution_id}:{task_id}"
        self.decisions.append(
            event(
                E.SUB_ORCHESTRATION_INSTANCE_CREATED,
                self.now,
                event_id=task_id,
                Name=name,
                InstanceId=child_id,
                Input=input_text,
            )
        )
        try:
            validate_instance_id(child_id)
        except ValueError as exc:
            reason = f"sub-orchestration '{name}': {exc}"
            ep.self_messages.append(
                event(
                    E.SUB_ORCHESTRATION_INSTANCE_FAILED,
                    self.now,
                    TaskScheduledId=task_id,
                    Reason=reason,
                    Details="",
                )
            )
            return
        if name in self.inp.orchestrators:
            ep.children.append(ChildStart(task_id=task_id, instance_id=child_id, name=name, input=input_text))
        else:
            ep.self_messages.append(
                event(
                    E.SUB_ORCHESTRATION_INSTANCE_FAILED,
                    self.now,
                    TaskScheduledId=task_id,
                    Reason=missing_function_message(name, "orchestrator"),
                    Details="",
                )
            )

    def _add_timer(self, timer_id: int, fire_at: str, *, cancelled: bool = False) -> None:
        self.decisions.append(event(E.TIMER_CREATED, self.now, event_id=timer_id, FireAt=fire_at))
        if not cancelled:
            self.book.pending_timers[timer_id] = fire_at
            self.ep.timers.append((timer_id, fire_at))

    # -- endings ----------------------------------------------------------------------------------

    def _fail(self, reason: str, details: str, kind: str) -> Episode:
        ep = self.ep
        ep.status = "Failed"
        ep.failure = (reason, details)
        ep.failure_kind = kind
        ep.output = json.dumps(reason)
        ep.events.append(
            event(
                E.EXECUTION_COMPLETED,
                self.now,
                OrchestrationStatus="Failed",
                Result=reason,
                FailureDetails={"ErrorMessage": reason, "StackTrace": details or None},
            )
        )
        ep.events.append(event(E.ORCHESTRATOR_COMPLETED, self.now))
        _drop_work(ep)
        return ep

    def _terminate(self, started: list[dict], terminated: dict) -> Episode:
        ep = self.ep
        reason = terminated.get("Input")
        ep.status = "Terminated"
        ep.output = json.dumps(reason)
        ep.events.extend(started)
        ep.events.append(terminated)
        ep.events.append(
            event(E.EXECUTION_COMPLETED, self.now, OrchestrationStatus="Terminated", Result=reason)
        )
        ep.events.append(event(E.ORCHESTRATOR_COMPLETED, self.now))
        ep.custom_status = None
        return ep


def _drop_work(ep: Episode) -> None:
    ep.activities.clear()
    ep.timers.clear()
    ep.children.clear()
    ep.self_messages.clear()
    ep.continued = False
    ep.continue_input = None


def _leaf_name(leaf: dict) -> str | None:
    if leaf.get("actionType") == A.WAIT_FOR_EXTERNAL_EVENT:
        return leaf.get("externalEventName")
    return leaf.get("functionName")


def _describe(action_type: Any, name: str | None, task_id: int | None) -> str:
    kind = KIND_WORDS.get(action_type, f"action type {action_type}")
    named = f" '{name}'" if name else ""
    numbered = f" with task id {task_id}" if task_id is not None else ""
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}{named}{numbered}"


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def new_execution_id() -> str:
    return str(uuid.uuid4())
