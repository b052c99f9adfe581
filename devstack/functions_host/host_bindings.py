"""What the local host serves: the trigger and binding types it has extensions for. The runtime indexes
the app; the host then refuses, by function and binding name, anything it cannot serve (as the Functions
host does for a binding whose extension is not installed)."""

from __future__ import annotations

from devstack.functions_host.worker import AppLoadError, BindingSpec, FunctionSpec

HTTP_TRIGGER = "httpTrigger"
QUEUE_TRIGGER = "queueTrigger"
TIMER_TRIGGER = "timerTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER)
SUPPORTED_BINDINGS = ("durableClient (in)", "http (out, $return)", "queue (out)")


def check_supported(specs: list[FunctionSpec]) -> None:
    """AppLoadError listing every trigger or binding the local host cannot serve."""
    problems = [f"function {s.name!r}: {p}" for s in specs for p in _unsupported(s.trigger, s.bindings)]
    if problems:
        raise AppLoadError("the app cannot run on the local host:\n  " + "\n  ".join(problems))


def _unsupported(trigger: BindingSpec, others: tuple[BindingSpec, ...]) -> list[str]:
    problems = []
    if trigger.type not in SUPPORTED_TRIGGERS:
        problems.append(
            f"trigger type {trigger.type!r} (binding {trigger.name!r}) is not supported by the local host; "
            f"supported triggers: {', '.join(SUPPORTED_TRIGGERS)}"
        )
    for b in others:
        if b.type == "durableClient" and b.direction == "IN":
            continue
        if b.type == "queue" and b.direction == "OUT":
            continue
        if b.type == "http" and b.direction == "OUT" and b.name == "$return" and trigger.type == HTTP_TRIGGER:
            continue
        problems.append(
            f"binding type {b.type!r} (direction {b.direction.lower()}, name {b.name!r}) is not supported by "
            f"the local host; supported bindings: {', '.join(SUPPORTED_BINDINGS)}"
        )
    return problems
