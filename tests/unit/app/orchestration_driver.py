"""Drive an orchestrator generator without a host: a stand-in context records what the orchestrator asks for,
a responder answers activities, timers move the clock, and sub-orchestrations run their real generators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrations.fan_out import grant_node_chunks, run_activity_batch
from orchestrations.granting import grant_staged_batch
from provisioning.grant_work import CHUNK_NODES, batch_key, batch_prefix, chunk_key, run_prefix

SUB_ORCHESTRATORS = {
    "run_activity_batch": run_activity_batch,
    "grant_node_chunks": grant_node_chunks,
    "grant_staged_batch": grant_staged_batch,
}


@dataclass(eq=False)
class Call:
    kind: str  # activity | sub | timer | all | any
    name: str
    input: Any = None
    children: list[Call] = field(default_factory=list)
    instance_id: str | None = None
    is_completed: bool = False
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


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

    def task_any(self, tasks: list[Call]) -> Call:
        return Call("any", "task_any", children=list(tasks))


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    statuses: list[Any] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)
    resolved: dict[int, Any] = field(default_factory=dict)
    timers_first: bool = False  # in a task_any, a timer finishes before work still running (slow grants)

    def activities(self, name: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.kind == "activity" and (name is None or c.name == name)]


Responder = Callable[[str, Any], Any]  # (activity name, input) -> result, or raise ActivityError


class Staging:
    """The Table side of granting, in memory: what `poll_pool` stages (provisioning.grant_work's chunking),
    what a chunk reads back, the pairs chunks granted (their records) and what `connection_sample` reads."""

    def __init__(self) -> None:
        self.rows: dict[str, list] = {}
        self.ever: dict[str, list] = {}  # every row staged, cleared or not: what the tests look back at
        self.granted: list[dict] = []
        self.cleared: list[str] = []

    def stage(self, data: dict, ready: list[list]) -> dict | None:
        """Stage the `ready` nodes (`[nodeId, ip, port, state]`) no earlier staging of the run handed on."""
        run, batch = data["stage"]["run"], batch_key(data["stage"]["run"], data["stage"]["batch"])
        own = batch_prefix(batch)
        done = {n[0] for key, nodes in self.rows.items() if key.startswith(run_prefix(run))
                and not key.startswith(own) for n in nodes}  # fmt: skip
        fresh = sorted((n for n in ready if n[0] not in done), key=lambda n: n[0])
        if not fresh:
            return None
        parts = [fresh[i : i + CHUNK_NODES] for i in range(0, len(fresh), CHUNK_NODES)]
        for k, part in enumerate(parts):
            self.rows[chunk_key(batch, k)] = self.ever[chunk_key(batch, k)] = part
        return {"work": batch, "chunks": len(parts), "nodes": len(fresh)}

    def nodes_of(self, data: dict, rows: dict | None = None) -> list[dict]:
        """The nodes of a chunk's input, as the activity reads them (a KeyError once cleared)."""
        if not data.get("work"):
            return data["nodes"]
        names = [u["name"] for u in data["users"]]
        return [{"nodeId": n, "ip": ip, "port": port, "state": state, "users": names}
                for n, ip, port, state in (self.rows if rows is None else rows)[data["work"]]]  # fmt: skip

    def nodes_in(self, data: dict) -> list[dict]:
        """The nodes a chunk was given, also after the run cleared its rows."""
        return self.nodes_of(data, self.ever)

    def read(self, data: dict) -> dict:
        return {"nodeIds": [n[0] for n in self.rows[data["work"]]]}

    def clear(self, data: dict) -> dict:
        self.cleared.append(data["run"])
        doomed = [key for key in self.rows if key.startswith(run_prefix(data["run"]))]
        for key in doomed:
            del self.rows[key]
        return {"cleared": len(doomed)}

    def sample(self, data: dict) -> dict:
        return {"connections": sorted(self.granted, key=lambda d: (d["nodeId"], d["user"]))[:100]}


def grant_chunk(
    data: dict, staging: Staging | None = None, *, failing=(), transient=(), raising=(), error=None
) -> dict:
    """What `grant_node_users` answers for a chunk: every (node, user) granted but on `failing` nodes
    (a permanent error) and, on a first attempt, `transient` nodes; a chunk with a `raising` node raises."""
    nodes = (staging or Staging()).nodes_of(data)
    if any(n["nodeId"] in raising for n in nodes):
        raise ActivityError("connection reset by peer")
    error = error or {"code": "OperationInvalidForCurrentState", "message": "node not ready"}
    busy = {"code": "ServerBusy", "message": "try later"}
    first = data.get("attempt", 1) < 2
    result = {"nodes": len(nodes), "pairs": 0, "granted": 0, "written": 0, "actions": {},
              "failed": [], "transient": [], "noEndpoint": []}  # fmt: skip
    again = []
    for node in nodes:
        for name in node["users"]:
            result["pairs"] += 1
            pair = {"nodeId": node["nodeId"], "user": name}
            if node["nodeId"] in failing:
                result["failed"].append({**pair, "error": error})
            elif node["nodeId"] in transient and first:
                result["transient"].append({**pair, "error": busy})
                again.append(node)
            else:
                result["granted"] += 1
                result["written"] += 1
                if staging is not None:
                    staging.granted.append({**pair, "ip": node.get("ip"), "port": node.get("port")})
    if again:
        rest = {k: v for k, v in data.items() if k != "work"}
        result["retry"] = {**rest, "nodes": list({n["nodeId"]: n for n in again}.values()), "attempt": 2}
    return result


def run_orchestrator(
    orchestrator: Callable,
    data: Any,
    respond: Responder,
    *,
    now: datetime,
    instance_id: str = "test-instance",
    timers_first: bool = False,
) -> tuple[Any, Recorder]:
    log = Recorder(timers_first=timers_first)
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
    if task.kind == "any":  # the first child finishes first (work started earlier ends before a later timer)
        timers = [c for c in task.children if c.kind == "timer"]
        winner = timers[0] if log.timers_first and timers else task.children[0]
        log.resolved[id(winner)] = _resolve(winner, context, respond, log)
        winner.is_completed = True
        return winner
    if task.kind == "all":
        results = []
        for child in task.children:
            try:
                results.append(_resolve(child, context, respond, log))
            except ActivityError as exc:
                results.append(exc)
            log.resolved[id(child)] = results[-1]
            child.is_completed = True
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
    answer = respond(task.name, task.input)
    # a responder may say how long an activity takes (`seconds`: name -> seconds): the clock moves on
    context.current_utc_datetime += timedelta(seconds=getattr(respond, "seconds", {}).get(task.name, 0))
    return answer
