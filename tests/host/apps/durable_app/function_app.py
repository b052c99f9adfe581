"""Durable test app: HTTP and queue starters, fan-out, retries, timers, sub-orchestrations,
continue_as_new, external events, a waiter to terminate and a non-deterministic orchestrator.
Activities record each run in RECORD_DIR so tests can count re-executions."""

import os
import time
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


def _append(name: str, line: str) -> None:
    path = Path(os.environ["RECORD_DIR"]) / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


def _count(name: str) -> int:
    path = Path(os.environ["RECORD_DIR"]) / name
    return len(path.read_text().splitlines()) if path.exists() else 0


@app.route(route="orchestrators/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    payload = req.get_json() if req.get_body() else None
    instance_id = await client.start_new(
        req.route_params["name"], instance_id=req.params.get("id"), client_input=payload
    )
    return client.create_check_status_response(req, instance_id)


@app.queue_trigger(arg_name="msg", queue_name="start-requests", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def queue_start(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    request = msg.get_json()
    await client.start_new(request["orchestrator"], instance_id=request["id"], client_input=request["input"])


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    tasks = [
        context.call_activity("work_item", {"tag": spec["tag"], "i": i, "ms": spec.get("ms", 0)})
        for i in range(spec["count"])
    ]
    results = yield context.task_all(tasks)
    return sum(results)


@app.orchestration_trigger(context_name="context")
def chunked_fan_out(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    children = [
        context.call_sub_orchestrator(
            "fan_out",
            {"tag": f"{spec['tag']}-{k}", "count": spec["per_chunk"]},
            f"{context.instance_id}-chunk-{k}",
        )
        for k in range(spec["chunks"])
    ]
    totals = yield context.task_all(children)
    return {"chunks": totals, "total": sum(totals)}


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=50, max_number_of_attempts=spec["attempts"]
    )
    return (yield context.call_activity_with_retry("flaky", options, spec))


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    yield context.call_activity("work_item", {"tag": spec["tag"], "i": 0})
    fire_at = context.current_utc_datetime + timedelta(milliseconds=spec["ms"])
    yield context.create_timer(fire_at)
    yield context.call_activity("work_item", {"tag": spec["tag"], "i": 1})
    return {"fired_at": fire_at.isoformat()}


@app.orchestration_trigger(context_name="context")
def countdown(context: df.DurableOrchestrationContext):
    state = context.get_input()
    if state["left"] > 0:
        yield context.call_activity("work_item", {"tag": state["tag"], "i": state["left"]})
        context.continue_as_new({"tag": state["tag"], "left": state["left"] - 1, "seen": state["seen"] + 1})
        return None
    return {"seen": state["seen"]}


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting for approval")
    decision = yield context.wait_for_external_event("Approval")
    return {"approved": decision}


@app.orchestration_trigger(context_name="context")
def forgetful(context: df.DurableOrchestrationContext):
    """Reads outside state while replaying, so its second episode disagrees with its first."""
    spec = context.get_input()
    first = "work_item" if _count(f"{spec['tag']}-episodes") == 0 else "echo"
    _append(f"{spec['tag']}-episodes", "episode")
    result = yield context.call_activity(first, {"tag": spec["tag"], "i": 0})
    return result


@app.activity_trigger(input_name="payload")
def work_item(payload: dict) -> int:
    _append(f"{payload['tag']}-runs", str(payload["i"]))
    if payload.get("ms"):
        time.sleep(payload["ms"] / 1000)
    return payload["i"] * 2


@app.activity_trigger(input_name="payload")
def flaky(payload: dict) -> str:
    _append(f"{payload['tag']}-attempts", "attempt")
    attempt = _count(f"{payload['tag']}-attempts")
    if attempt <= payload["fail_times"]:
        raise RuntimeError(f"attempt {attempt} failed on purpose")
    return f"succeeded on attempt {attempt}"


@app.activity_trigger(input_name="value")
async def echo(value: dict) -> dict:
    return value
