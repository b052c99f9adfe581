"""The durable HTTP API, driven by the SDK's own DurableOrchestrationClient (rpc API) and by plain HTTP
requests to the management URLs it hands out (public webhook API, function key required)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import azure.durable_functions as df
import azure.functions as func
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus
from azure.durable_functions.models.utils import http_utils

from devstack.functions_host.durable.engine import DurableEngine
from devstack.functions_host.durable.http_api import add_durable_routes, client_binding_json
from tests.durable.support import run, running_engine, wait_for_status

KEY = "test-function-key"
app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def greet(context: df.DurableOrchestrationContext):
    value = context.get_input()
    name = value["name"] if isinstance(value, dict) else value
    return (yield context.call_activity("hello", name))


@app.orchestration_trigger(context_name="context")
def await_approval(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting")
    decision = yield context.wait_for_external_event("approval")
    return {"decision": decision}


@app.activity_trigger(input_name="name")
def hello(name) -> str:
    return f"Hello {name}!"


def _key_ok(request: web.Request) -> bool:
    return KEY in (request.query.get("code"), request.headers.get("x-functions-key"))


@contextlib.asynccontextmanager
async def serving(engine: DurableEngine) -> AsyncIterator[str]:
    """The durable routes on a loopback aiohttp server (port chosen by the OS); yields its base URL."""
    web_app = web.Application()
    add_durable_routes(web_app, engine, check_key=_key_ok, key=KEY)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await http_utils._close_session()  # the SDK keeps one client session per process
        await runner.cleanup()


@contextlib.asynccontextmanager
async def client_and_engine(
    tmp_path,
) -> AsyncIterator[tuple[df.DurableOrchestrationClient, DurableEngine, str]]:
    async with running_engine(app, tmp_path / "store.sqlite3") as engine, serving(engine) as base_url:
        binding = client_binding_json(
            base_url=base_url, task_hub=engine.task_hub, connection="Storage", key=KEY
        )
        yield df.DurableOrchestrationClient(binding), engine, base_url


def _request(url: str) -> func.HttpRequest:
    return func.HttpRequest("POST", url, headers={}, params={}, route_params={}, body=b"")


def test_client_starts_and_reads_instances(tmp_path):
    async def scenario():
        async with client_and_engine(tmp_path) as (client, engine, _):
            generated = await client.start_new("greet", None, "Ada")
            named = await client.start_new("greet", "greet-grace", "Grace")
            await engine.wait_for(generated, 30)
            await engine.wait_for(named, 30)
            status = await client.get_status(named, show_history=True, show_history_output=True)
            plain = await client.get_status(named)
            missing = await client.get_status("nobody")
            completed = await client.get_status_by(runtime_status=[OrchestrationRuntimeStatus.Completed])
            since = await client.get_status_by(created_time_from=datetime.now(UTC) - timedelta(minutes=5))
            everything = await client.get_status_all()
            return generated, status, plain, missing, completed, since, everything

    generated, status, plain, missing, completed, since, everything = run(scenario())
    assert len(generated) == 32
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed
    assert status.output == "Hello Grace!" and status.name == "greet" and status.instance_id == "greet-grace"
    assert status.input_ == '"Grace"'  # the stored input is the JSON text, as the real extension shows it
    history = status.historyEvents
    assert [e["EventType"] for e in history] == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
    assert history[1]["FunctionName"] == "hello" and history[1]["Result"] == "Hello Grace!"
    assert not hasattr(plain, "historyEvents")
    assert not missing  # unknown instance: the client's falsy status
    assert {s.instance_id for s in completed} == {generated, "greet-grace"}
    assert len(since) == 2 and len(everything) == 2


def test_client_refuses_unknown_orchestrator_and_running_duplicate(tmp_path):
    async def scenario():
        async with client_and_engine(tmp_path) as (client, _, _):
            errors = []
            for name, instance_id in (
                ("no_such_orchestrator", None),
                ("await_approval", "dup"),
                ("await_approval", "dup"),
            ):
                try:
                    await client.start_new(name, instance_id, None)
                except Exception as exc:  # noqa: BLE001 - the SDK raises a bare Exception
                    errors.append(str(exc))
            return errors

    errors = run(scenario())
    assert len(errors) == 2
    assert "no_such_orchestrator" in errors[0]
    assert "already exists" in errors[1]


def test_client_raises_events_terminates_and_purges(tmp_path):
    async def scenario():
        async with client_and_engine(tmp_path) as (client, engine, _):
            approved = await client.start_new("await_approval", "approved")
            await wait_for_status(engine, approved, lambda s: s["customStatus"] == "waiting")
            await client.raise_event(approved, "approval", {"ok": True})
            approved_status = await engine.wait_for(approved, 30)

            stopped = await client.start_new("await_approval", "stopped")
            await wait_for_status(engine, stopped, lambda s: s["runtimeStatus"] == "Running")
            await client.terminate(stopped, "changed my mind")
            stopped_status = await engine.wait_for(stopped, 30)
            try:
                await client.raise_event(stopped, "approval", 1)
                gone = None
            except Exception as exc:  # noqa: BLE001
                gone = str(exc)
            purged = await client.purge_instance_history(stopped)
            purged_again = await client.purge_instance_history(stopped)
            return approved_status, stopped_status, gone, purged, purged_again

    approved_status, stopped_status, gone, purged, purged_again = run(scenario())
    # The SDK client JSON-encodes event data twice; the extension keeps it as a JSON string, so the
    # orchestrator receives the JSON text (known SDK behaviour, reproduced here as in Azure).
    assert approved_status["output"] == {"decision": '{"ok": true}'}
    assert stopped_status["runtimeStatus"] == "Terminated" and stopped_status["output"] == "changed my mind"
    assert gone and "is gone" in gone
    assert purged.instances_deleted == 1 and purged_again.instances_deleted == 0


def test_check_status_urls_work_with_the_key(tmp_path):
    async def scenario():
        async with client_and_engine(tmp_path) as (client, engine, base_url), aiohttp.ClientSession() as http:
            instance_id = await client.start_new("await_approval")
            response = client.create_check_status_response(_request(f"{base_url}/api/start"), instance_id)
            links = json.loads(response.get_body())
            await wait_for_status(engine, instance_id, lambda s: s["customStatus"] == "waiting")
            async with http.get(links["statusQueryGetUri"]) as r:
                running = (r.status, await r.json())
            async with http.get(links["statusQueryGetUri"].split("&code=")[0]) as r:
                without_key = r.status
            event_url = links["sendEventPostUri"].replace("{eventName}", "approval")
            async with http.post(event_url, json={"ok": True}) as r:
                raised = r.status
            done = await engine.wait_for(instance_id, 30)
            async with http.get(links["statusQueryGetUri"]) as r:
                finished = (r.status, await r.json())
            async with http.post(links["terminatePostUri"].replace("{text}", "late")) as r:
                terminate_finished = r.status
            async with http.delete(links["purgeHistoryDeleteUri"]) as r:
                purged = (r.status, await r.json())
            return response, links, running, without_key, raised, done, finished, terminate_finished, purged

    response, links, running, without_key, raised, done, finished, terminate_finished, purged = run(
        scenario()
    )
    assert response.status_code == 202 and response.headers["Location"] == links["statusQueryGetUri"]
    assert "/runtime/webhooks/durabletask/instances/" in links["statusQueryGetUri"]
    assert running[0] == 202 and running[1]["runtimeStatus"] == "Running"
    assert without_key == 401
    assert raised == 202
    assert done["output"] == {"decision": {"ok": True}}  # a JSON body posted directly arrives as JSON
    assert finished[0] == 200 and finished[1]["runtimeStatus"] == "Completed"
    assert terminate_finished == 410
    assert purged == (200, {"instancesDeleted": 1})


def test_wait_for_completion_or_check_status(tmp_path):
    async def scenario():
        async with client_and_engine(tmp_path) as (client, _, base_url):
            request = _request(f"{base_url}/api/start")
            quick = await client.start_new("greet", None, "Lin")
            completed = await client.wait_for_completion_or_create_check_status_response(
                request, quick, timeout_in_milliseconds=20000, retry_interval_in_milliseconds=50
            )
            slow = await client.start_new("await_approval")
            pending = await client.wait_for_completion_or_create_check_status_response(
                request, slow, timeout_in_milliseconds=200, retry_interval_in_milliseconds=50
            )
            return completed, pending

    completed, pending = run(scenario())
    # The SDK answers a string output as the body itself (not JSON-encoded), as it does in Azure.
    assert completed.status_code == 200 and completed.get_body() == b"Hello Lin!"
    assert pending.status_code == 202 and "statusQueryGetUri" in json.loads(pending.get_body())


def test_webhook_start_requires_the_key_and_answers_check_status(tmp_path):
    async def scenario():
        async with client_and_engine(tmp_path) as (_, engine, base_url), aiohttp.ClientSession() as http:
            url = f"{base_url}/runtime/webhooks/durabletask/orchestrators/greet/hook-1"
            async with http.post(url, json={"name": "Kim"}) as r:
                refused = r.status
            async with http.post(url, json={"name": "Kim"}, headers={"x-functions-key": KEY}) as r:
                started = (r.status, await r.json())
            status = await engine.wait_for("hook-1", 30)
            shown = await engine.get_status("hook-1")
            async with http.get(started[1]["statusQueryGetUri"] + "&showInput=false") as r:
                hidden = await r.json()
            async with http.post(url, data="{not json", headers={"x-functions-key": KEY}) as r:
                bad = (r.status, await r.json())
            return refused, started, status, shown, hidden, bad

    refused, started, status, shown, hidden, bad = run(scenario())
    assert refused == 401
    assert (
        started[0] == 202
        and started[1]["id"] == "hook-1"
        and f"code={KEY}" in started[1]["statusQueryGetUri"]
    )
    assert status["output"] == "Hello Kim!"
    assert shown["input"] == {"name": "Kim"}  # a JSON body is stored (and shown) as posted
    assert hidden["input"] is None and hidden["output"] == "Hello Kim!"
    assert bad[0] == 400 and "Invalid JSON" in bad[1]["Message"]


def test_rpc_api_refuses_non_loopback_callers(tmp_path):
    async def scenario():
        async with running_engine(app, tmp_path / "store.sqlite3") as engine:
            web_app = web.Application()
            add_durable_routes(web_app, engine, check_key=_key_ok, key=KEY)
            request = make_mocked_request(
                "GET",
                f"/durabletask/{KEY}/instances/x",
                app=web_app,
                transport=_Transport(("192.0.2.10", 40000)),
            )
            match = await web_app.router.resolve(request)
            response = await match.handler(request)
            return response.status

    assert run(scenario()) == 403


class _Transport:
    """The peer address a request came from (all make_mocked_request reads of its transport)."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default=None):
        return self.peer if name == "peername" else default

    def is_closing(self) -> bool:
        return False
