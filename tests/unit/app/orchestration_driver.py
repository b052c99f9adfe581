"""Drive an orchestrator generator without a host: a stand-in context records what the orchestrator asks for,
a responder answers activities, timers move the clock, and sub-orchestrations run their real generators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrations.fan_out import run_activity_batch

SUB_ORCHESTRATORS = {"run_activity_batch": run_activity_batch}


@dataclass
class Call:
    kind: str  # activity | sub | timer | all
    name: str
    input: Any = None
    children: list[Call] = field(default_factory=list)
    instance_id: str | None = None


class ActivityError(Exception):
    """What an activity raises after its retries (the SDK throws it into the orchestrator)."""


class FakeContext:
    def __init__(self, data: Any, *, now: datetime, instance_id: str, log: Recorder) -> None:
        self._input, self.instance_id, self.current_utc_datetime, self.log = data, instance_id, now, log

    def get_input(self) -> Any:
        return self._input

    def set_custom_status(self, status: Any) -> None:
        self.log.statuses.append(status)

    def call_activity(self, name: str, data: Any = None) -> Call:
        return Call("activity", name, data)

    def call_activity_with_retry(self, name: str, retry: Any, data: Any = None) -> Call:
        return Call("activity", name, data)

    def call_sub_orchestrator(self, name: str, data: Any = None, instance_id: str | None = None) -> Call:
        return Call("sub", name, data, instance_id=instance_id)

    def create_timer(self, fire_at: datetime) -> Call:
        return Call("timer", "timer", fire_at)

    def task_all(self, tasks: list[Call]) -> Call:
        return Call("all", "task_all", children=list(tasks))


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    statuses: list[Any] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)
    resolved: dict[int, Any] = field(default_factory=dict)

    def activities(self, name: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.kind == "activity" and (name is None or c.name == name)]


Responder = Callable[[str, Any], Any]  # (activity name, input) -> result, or raise ActivityError


def run_orchestrator(
    orchestrator: Callable,
    data: Any,
    respond: Responder,
    *,
    now: datetime,
    instance_id: str = "test-instance",
) -> tuple[Any, Recorder]:
    log = Recorder()
    return _run(orchestrator, data, respond, now, instance_id, log), log


def _run(orchestrator, data, respond, now, instance_id, log) -> Any:
    context = FakeContext(data, now=now, instance_id=instance_id, log=log)
    generator = orchestrator(context)
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            task = generator.throw(to_throw) if to_throw else generator.send(to_send)
        except StopIteration as stop:
            return stop.value
        to_send, to_throw = None, None
        try:
            to_send = _resolve(task, context, respond, log)
        except ActivityError as exc:
            to_throw = exc


def _resolve(task: Call, context: FakeContext, respond: Responder, log: Recorder) -> Any:
    if id(task) in log.resolved:  # a finished child yielded again: same outcome, not run again
        result = log.resolved[id(task)]
        if isinstance(result, ActivityError):
            raise result
        return result
    if task.kind == "all":
        results = []
        for child in task.children:
            try:
                results.append(_resolve(child, context, respond, log))
            except ActivityError as exc:
                results.append(exc)
            log.resolved[id(child)] = results[-1]
        errors = [r for r in results if isinstance(r, ActivityError)]
        if errors:
            raise errors[0]
        return results
    log.calls.append(task)
    if task.kind == "timer":
        log.timers.append(task.input)
        context.current_utc_datetime = max(context.current_utc_datetime, task.input)
        return None
    if task.kind == "sub":
        sub = SUB_ORCHESTRATORS[task.name]
        return _run(sub, task.input, respond, context.current_utc_datetime, task.instance_id, log)
    return respond(task.name, task.input)
