"""The durable engine driving real DFApp orchestrations through the SDK: fan-out, retries, timers,
sub-orchestrations, continue_as_new, external events, terminate, purge, non-determinism, custom status and
instance-id reuse."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import timedelta

import azure.durable_functions as df
import pytest

from devstack.functions_host.durable.engine import (
    InstanceExistsError,
    InstanceFinishedError,
    InstanceNotFinishedError,
)
from devstack.functions_host.durable.protocol import HistoryEventType
from tests.durable.support import functions_of, run, running_engine, wait_for_status

app = df.DFApp()
calls: dict[str, int] = {}
gates: dict[str, threading.Event] = {}
ACTIVITY_FOR_STEP = {"name": "step_a"}


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()
    gates.clear()
    ACTIVITY_FOR_STEP["name"] = "step_a"


def _count(key: str) -> int:
    calls[key] = calls.get(key, 0) + 1
    return calls[key]


# -- activities ------------------------------------------------------------------------------------


@app.activity_trigger(input_name="value")
def square(value: int) -> int:
    return value * value


@app.activity_trigger(input_name="payload")
def flaky(payload: dict) -> str:
    """Fails until its `succeed_on`-th call (per key); counts its calls."""
    attempt = _count(payload["key"])
    if attempt < payload["succeed_on"]:
        raise RuntimeError(f"attempt {attempt} of {payload['key']} failed")
    return f"{payload['key']} succeeded on attempt {attempt}"


@app.activity_trigger(input_name="name")
def wait_gate(name: str) -> str:
    if not gates[name].wait(30):
        raise TimeoutError(f"gate {name} was never opened")
    return name


@app.activity_trigger(input_name="value")
def step_a(value: str) -> str:
    ACTIVITY_FOR_STEP["name"] = "step_b"  # the orchestrator reads this global: its replay changes
    return f"a:{value}"


@app.activity_trigger(input_name="value")
def step_b(value: str) -> str:
    return f"b:{value}"


# -- orchestrators ---------------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()["count"]
    results = yield context.task_all([context.call_activity("square", i) for i in range(count)])
    return {"count": len(results), "sum": sum(results), "first": results[:3]}


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    options = context.get_input()
    retry = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=options["max"])
    try:
        outcome = yield context.call_activity_with_retry("flaky", retry, options)
    except Exception as exc:  # noqa: BLE001 - the orchestrator sees the last attempt's failure
        outcome = f"gave up: {exc}"
    after = yield context.call_activity("square", 7)  # a later task must get the next id
    return {"outcome": outcome, "after": after}


@app.orchestration_trigger(context_name="context")
def timers_in_order(context: df.DurableOrchestrationContext):
    start = context.current_utc_datetime
    offsets = [0.6, 0.2, 0.4]
    timers = [context.create_timer(start + timedelta(seconds=s)) for s in offsets]
    pending = list(timers)
    order = []
    woke_after_due = True
    while pending:
        winner = yield context.task_any(pending)
        index = timers.index(winner)
        order.append(index)
        woke_after_due = woke_after_due and context.current_utc_datetime >= start + timedelta(
            seconds=offsets[index]
        )
        pending.remove(winner)
    return {"order": order, "woke_after_due": woke_after_due}


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    seconds = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    return "woke"


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    value = context.get_input()
    squared = yield context.call_activity("square", value["n"])
    return {"instance": context.instance_id, "parent": context.parent_instance_id, "squared": squared}


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("flaky", context.get_input()))


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    explicit = yield context.call_sub_orchestrator("child", {"n": 3}, f"{context.instance_id}-kid")
    generated = yield context.task_all([context.call_sub_orchestrator("child", {"n": n}) for n in (4, 5)])
    retry = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=3)
    retried = yield context.call_sub_orchestrator_with_retry(
        "flaky_child", retry, {"key": "child", "succeed_on": 3}, f"{context.instance_id}-flaky"
    )
    return {"explicit": explicit, "generated": generated, "retried": retried}


@app.orchestration_trigger(context_name="context")
def adopts_busy_child(context: df.DurableOrchestrationContext):
    try:
        yield context.call_sub_orchestrator("approval", {}, "busy-child")
    except Exception as exc:  # noqa: BLE001
        return f"refused: {exc}"
    return "unexpected"


@app.orchestration_trigger(context_name="context")
def names_child_badly(context: df.DurableOrchestrationContext):
    try:
        yield context.call_sub_orchestrator("child", {"n": 1}, "bad#id")
    except Exception as exc:  # noqa: BLE001
        return f"refused: {exc}"
    return "unexpected"


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    state = context.get_input()
    squared = yield context.call_activity("square", state["n"])
    history = state["squares"] + [squared]
    if state["n"] < state["until"]:
        context.continue_as_new({"n": state["n"] + 1, "until": state["until"], "squares": history})
        return None
    return {"generation": state["n"], "squares": history}


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    gate = context.get_input().get("gate")
    if gate:
        yield context.call_activity("wait_gate", gate)
    context.set_custom_status("waiting for approval")
    decision = yield context.wait_for_external_event("approval")
    context.set_custom_status("decided")
    return {"decision": decision}


@app.orchestration_trigger(context_name="context")
def approval_with_timeout(context: df.DurableOrchestrationContext):
    seconds = context.get_input()
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    event = context.wait_for_external_event("approval")
    context.set_custom_status("waiting")
    winner = yield context.task_any([event, deadline])
    if winner == event:
        deadline.cancel()
        return {"approved": event.result}
    return "timed out"


@app.orchestration_trigger(context_name="context")
def drifting(context: df.DurableOrchestrationContext):
    first = yield context.call_activity(ACTIVITY_FOR_STEP["name"], "one")
    second = yield context.call_activity("square", 2)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    yield context.call_activity("square", 1)
    raise ValueError("the orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def calls_missing(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("no_such_activity", 1)
    except Exception as exc:  # noqa: BLE001
        return str(exc)
    return "unexpected"


@app.orchestration_trigger(context_name="context")
def echo(context: df.DurableOrchestrationContext):
    value = context.get_input()
    yield context.call_activity("square", 1)
    return value


# -- tests -----------------------------------------------------------------------------------------


def test_fan_out_of_500_activities_returns_every_result(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3", max_concurrent_activities=20) as engine:
            instance_id = await engine.start_new("fan_out", "fan-500", json.dumps({"count": 500}))
            return await engine.wait_for(instance_id, 120)

    status = run(scenario())
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == {"count": 500, "sum": sum(i * i for i in range(500)), "first": [0, 1, 4]}


def test_retry_succeeds_on_third_attempt_and_later_tasks_keep_their_ids(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new(
                "retrying", None, json.dumps({"key": "k3", "succeed_on": 3, "max": 5})
            )
            status = await engine.wait_for(instance_id, 30)
            detailed = await engine.get_status(instance_id, show_history=True)
            return status, detailed

    status, detailed = run(scenario())
    assert status["output"] == {"outcome": "k3 succeeded on attempt 3", "after": 49}
    assert calls["k3"] == 3
    kinds = [e["EventType"] for e in detailed["historyEvents"]]
    assert kinds.count("TaskFailed") == 2 and kinds.count("TimerFired") == 2


def test_retry_that_exhausts_its_attempts_surfaces_the_failure(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new(
                "retrying", None, json.dumps({"key": "k9", "succeed_on": 9, "max": 3})
            )
            return await engine.wait_for(instance_id, 30)

    status = run(scenario())
    assert calls["k9"] == 3
    assert status["runtimeStatus"] == "Completed"
    assert status["output"]["outcome"].startswith("gave up: attempt 3 of k9 failed")
    assert status["output"]["after"] == 49


def test_timers_fire_in_fire_time_order(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new("timers_in_order")
            return await engine.wait_for(instance_id, 30)

    status = run(scenario())
    assert status["output"] == {"order": [1, 2, 0], "woke_after_due": True}


def test_overdue_timer_fires_at_once_after_restart(tmp_path):
    store = tmp_path / "store.sqlite3"

    async def scenario():
        async with running_engine(app, store) as engine:
            instance_id = await engine.start_new("sleeper", None, json.dumps(1.0))
            await wait_for_status(engine, instance_id, lambda s: s["runtimeStatus"] == "Running")
            created = await engine.get_status(instance_id, show_history=True)
        fire_at = next(e["FireAt"] for e in created["historyEvents"] if e["EventType"] == "TimerCreated")
        # The engine is down while the timer falls due.
        while (await _utc_now()) < fire_at:
            await asyncio.sleep(0.05)
        async with running_engine(app, store) as engine:
            return await engine.wait_for(instance_id, 10)

    status = run(scenario())
    assert status["runtimeStatus"] == "Completed" and status["output"] == "woke"


async def _utc_now() -> str:
    from devstack.functions_host.durable.protocol import format_time, utcnow

    return format_time(utcnow())


def test_sub_orchestrations_with_explicit_generated_ids_and_retry(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new("parent", "mom")
            status = await engine.wait_for(instance_id, 30)
            kid = await engine.get_status("mom-kid")
            return status, kid

    status, kid = run(scenario())
    output = status["output"]
    assert output["explicit"] == {"instance": "mom-kid", "parent": "mom", "squared": 9}
    assert [g["squared"] for g in output["generated"]] == [16, 25]
    generated_ids = [g["instance"] for g in output["generated"]]
    assert len(set(generated_ids)) == 2 and all(":" in i for i in generated_ids)
    assert output["retried"] == "child succeeded on attempt 3"
    assert calls["child"] == 3
    assert kid["runtimeStatus"] == "Completed" and kid["name"] == "child"


def test_sub_orchestration_on_a_running_instance_id_fails_in_the_parent(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            await engine.start_new("approval", "busy-child", json.dumps({}))
            parent_id = await engine.start_new("adopts_busy_child")
            return await engine.wait_for(parent_id, 30), await engine.get_status("busy-child")

    status, child_status = run(scenario())
    assert status["output"].startswith("refused: ") and "'busy-child' already exists" in status["output"]
    assert child_status["runtimeStatus"] == "Running"


def test_sub_orchestration_with_an_invalid_instance_id_fails_the_task_with_the_rule(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            return await engine.wait_for(await engine.start_new("names_child_badly"), 30)

    output = run(scenario())["output"]
    assert output.startswith("refused: sub-orchestration 'child': instance_id: must not contain")


def test_continue_as_new_runs_generations_with_new_input_and_fresh_history(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new(
                "counter", "count", json.dumps({"n": 1, "until": 4, "squares": []})
            )
            status = await engine.wait_for(instance_id, 30)
            detailed = await engine.get_status(instance_id, show_history=True)
            return status, detailed

    status, detailed = run(scenario())
    assert status["output"] == {"generation": 4, "squares": [1, 4, 9, 16]}
    assert json.loads(status["input"])["n"] == 4
    completed = [e for e in detailed["historyEvents"] if e["EventType"] == "TaskCompleted"]
    assert len(completed) == 1  # only the last generation's history is kept


def test_external_event_raised_before_the_orchestrator_waits_is_kept(tmp_path):
    async def scenario():
        gates["early"] = threading.Event()
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new("approval", None, json.dumps({"gate": "early"}))
            await engine.raise_event(instance_id, "approval", json.dumps({"by": "ops"}))
            gates["early"].set()
            return await engine.wait_for(instance_id, 30)

    status = run(scenario())
    assert status["output"] == {"decision": {"by": "ops"}}


def test_external_event_raised_while_waiting_and_custom_status_visible(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new("approval", None, json.dumps({}))
            waiting = await wait_for_status(engine, instance_id, lambda s: s["customStatus"] is not None)
            await engine.raise_event(instance_id, "approval", json.dumps("yes"))
            return waiting, await engine.wait_for(instance_id, 30)

    waiting, status = run(scenario())
    assert waiting["runtimeStatus"] == "Running" and waiting["customStatus"] == "waiting for approval"
    assert status["output"] == {"decision": "yes"} and status["customStatus"] == "decided"


def test_task_any_with_a_timer_as_timeout(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            timed_out = await engine.start_new("approval_with_timeout", None, json.dumps(0.3))
            answered = await engine.start_new("approval_with_timeout", None, json.dumps(60))
            await wait_for_status(engine, answered, lambda s: s["customStatus"] == "waiting")
            await engine.raise_event(answered, "approval", json.dumps("granted"))
            return await engine.wait_for(timed_out, 30), await engine.wait_for(answered, 30)

    timed_out, answered = run(scenario())
    assert timed_out["output"] == "timed out"
    assert answered["output"] == {"approved": "granted"}


def test_terminate_ends_a_running_instance(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new("approval", None, json.dumps({}))
            await wait_for_status(engine, instance_id, lambda s: s["runtimeStatus"] == "Running")
            await engine.terminate(instance_id, "no longer needed")
            status = await engine.wait_for(instance_id, 30)
            with pytest.raises(InstanceFinishedError):
                await engine.raise_event(instance_id, "approval", "1")
            with pytest.raises(InstanceFinishedError):
                await engine.terminate(instance_id, "again")
            with pytest.raises(KeyError):
                await engine.terminate("nobody", "x")
            return status

    status = run(scenario())
    assert status["runtimeStatus"] == "Terminated" and status["output"] == "no longer needed"
    assert status["customStatus"] == "waiting for approval"  # the last custom status stays visible


def test_purge_deletes_a_finished_instance_only(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            done = await engine.start_new("echo", None, json.dumps("x"))
            await engine.wait_for(done, 30)
            live = await engine.start_new("approval", None, json.dumps({}))
            with pytest.raises(InstanceNotFinishedError):
                await engine.purge(live)
            purged = await engine.purge(done)
            return purged, await engine.get_status(done), await engine.purge(done)

    purged, status_after, purged_again = run(scenario())
    assert purged == 1 and status_after is None and purged_again == 0


def test_changed_orchestrator_code_fails_the_instance_as_non_deterministic(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new("drifting")
            return await engine.wait_for(instance_id, 30)

    status = run(scenario())
    assert status["runtimeStatus"] == "Failed"
    assert status["output"].startswith("Non-Deterministic workflow detected")
    assert "activity 'step_a' with task id 0" in status["output"] and "'step_b'" in status["output"]


def test_orchestrator_exception_fails_with_its_message(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new("failing")
            return await engine.wait_for(instance_id, 30)

    status = run(scenario())
    assert status["runtimeStatus"] == "Failed" and status["output"] == "the orchestrator gave up"


def test_unknown_activity_fails_the_task_with_a_clear_reason(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            instance_id = await engine.start_new("calls_missing")
            return await engine.wait_for(instance_id, 30)

    status = run(scenario())
    assert "The function 'no_such_activity' doesn't exist" in status["output"]


def test_start_new_refuses_a_running_id_and_replaces_a_finished_one(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            await engine.start_new("approval", "same", json.dumps({}))
            with pytest.raises(InstanceExistsError):
                await engine.start_new("echo", "same", json.dumps(1))
            await engine.terminate("same", "make room")
            await engine.wait_for("same", 30)
            await engine.start_new("echo", "same", json.dumps("first"))
            first = await engine.wait_for("same", 30)
            await engine.start_new("echo", "same", json.dumps("second"))
            second = await engine.wait_for("same", 30)
            with pytest.raises(ValueError, match="orchestrator 'nope'"):
                await engine.start_new("nope")
            with pytest.raises(ValueError, match="instance_id"):
                await engine.start_new("echo", "bad/id")
            with pytest.raises(ValueError, match="input_json: must be JSON text"):
                await engine.start_new("echo", None, "{not json")
            return first, second, await engine.query()

    first, second, everything = run(scenario())
    assert first["output"] == "first" and second["output"] == "second" and second["name"] == "echo"
    assert [s["instanceId"] for s in everything] == ["same"]


def test_query_filters_by_status_and_creation_time(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            done = await engine.start_new("echo", "q-done", json.dumps(1))
            await engine.wait_for(done, 30)
            await engine.start_new("approval", "q-live", json.dumps({}))
            await wait_for_status(engine, "q-live", lambda s: s["runtimeStatus"] == "Running")
            completed = await engine.query(runtime_status=["Completed"])
            running = await engine.query(runtime_status=["Running", "Pending"])
            first = await engine.query(top=1)
            with pytest.raises(ValueError, match="runtime_status"):
                await engine.query(runtime_status=["Done"])
            return completed, running, first

    completed, running, first = run(scenario())
    assert [s["instanceId"] for s in completed] == ["q-done"]
    assert [s["instanceId"] for s in running] == ["q-live"]
    assert [s["instanceId"] for s in first] == ["q-done"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_completions_that_arrive_together_are_delivered_in_one_episode(tmp_path):
    """While one episode runs, the other activities finish; the next episode gets all of them at once."""
    handler = _Records()
    logger = logging.getLogger("tests.durable.batching")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    fan_out_handle = functions_of(app)[0]["fan_out"]
    engine_box: list = []
    seen: list[int] = []

    def held_fan_out(context_json: str) -> str:
        history = json.loads(context_json)["history"]
        last_start = max(
            i for i, e in enumerate(history) if e["EventType"] == HistoryEventType.ORCHESTRATOR_STARTED
        )
        new_completions = sum(
            1 for e in history[last_start:] if e["EventType"] == HistoryEventType.TASK_COMPLETED
        )
        seen.append(new_completions)
        if len(seen) == 2:  # hold this episode until every other completion waits in the inbox
            engine = engine_box[0]
            deadline = time.monotonic() + 30
            while engine.pending_events("batched") < 10 - new_completions:
                if time.monotonic() > deadline:
                    raise TimeoutError("completions never arrived")
                time.sleep(0.01)
        return fan_out_handle(context_json)

    async def scenario():
        async with running_engine(
            app,
            tmp_path / "store.sqlite3",
            logger=logger,
            max_concurrent_activities=10,
            orchestrators={"fan_out": held_fan_out},
        ) as engine:
            engine_box.append(engine)
            await engine.start_new("fan_out", "batched", json.dumps({"count": 10}))
            return await engine.wait_for("batched", 30)

    status = run(scenario())
    logger.removeHandler(handler)
    assert status["output"]["count"] == 10
    # One episode schedules; one takes the first completion(s); the next takes all the rest at once.
    expected = [0, seen[1]] + ([10 - seen[1]] if seen[1] < 10 else [])
    assert seen == expected
    messages = [r.getMessage() for r in handler.records]
    assert len([m for m in messages if "durable activity" in m]) == 10
    assert len([m for m in messages if "durable orchestrator" in m]) == len(expected)
    for message in messages:  # log lines never carry inputs or outputs
        assert "[0, 1, 4]" not in message and "count" not in message
