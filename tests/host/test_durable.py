"""Durable functions through the host: the HTTP starter and its status URLs, a big fan-out, retries,
timers, sub-orchestrations, continue_as_new, external events, terminate and non-determinism."""

from __future__ import annotations

import json
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest
from azure.storage.queue import TextBase64EncodePolicy

from tests.fixtures.functions_host import HostFactory, RunningHost
from tests.host.queue_helpers import queue_client

WEBHOOK = "/runtime/webhooks/durabletask"


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("durable-records")


@pytest.fixture(scope="module")
def durable_host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, records: Path):
    factory = HostFactory(request, tmp_path_factory.mktemp("durable"))
    try:
        yield factory("durable_app", env={"RECORD_DIR": str(records)}, storage=True)
    finally:
        factory.stop_all()


def start(
    host: RunningHost, orchestrator: str, payload: dict | None = None, instance_id: str | None = None
) -> dict:
    query = f"?id={urllib.parse.quote(instance_id)}" if instance_id else ""
    status, headers, body = host.endpoint.request(
        "POST", f"/api/orchestrators/{orchestrator}{query}", json=payload
    )
    assert status == 202, body
    assert headers["Location"] == body["statusQueryGetUri"]
    return body


def run(host: RunningHost, orchestrator: str, payload: dict | None = None, timeout: float = 60) -> dict:
    started = start(host, orchestrator, payload)
    return host.endpoint.wait_for_instance(started["id"], timeout)


def test_queue_triggered_starter_gets_a_durable_client(durable_host: RunningHost, azurite) -> None:
    queue = queue_client(
        azurite.connection_string, "start-requests", message_encode_policy=TextBase64EncodePolicy()
    )
    request = {"orchestrator": "fan_out", "id": "from-queue-1", "input": {"tag": "queued", "count": 4}}
    queue.send_message(json.dumps(request))
    final = durable_host.endpoint.wait_for_instance("from-queue-1", 60)
    assert final["runtimeStatus"] == "Completed", final


def runs(records: Path, tag: str) -> Counter:
    path = records / f"{tag}-runs"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def test_http_starter_answers_202_with_status_urls_that_carry_the_system_key(
    durable_host: RunningHost,
) -> None:
    started = start(durable_host, "fan_out", {"tag": "starter", "count": 3}, instance_id="starter-1")
    assert started["id"] == "starter-1"
    status_url = started["statusQueryGetUri"]
    assert status_url.startswith(durable_host.url + WEBHOOK + "/instances/starter-1")
    system_key = durable_host.endpoint.system_key
    assert f"code={system_key}" in status_url and system_key != durable_host.key
    durable_host.endpoint.wait_for_instance("starter-1", 30)
    path = status_url[len(durable_host.url) :]
    status, _, body = durable_host.endpoint.request("GET", path, key=False)
    assert status == 200
    assert (body["runtimeStatus"], body["output"], body["name"]) == ("Completed", 6, "fan_out")
    for wrong in ("wrong", durable_host.key):  # the function key is not accepted on the durable API
        assert durable_host.endpoint.request("GET", path.replace(system_key, wrong), key=False)[0] == 401


DURABLE_ROUTES = [
    ("POST", "/orchestrators/fan_out"),
    ("POST", "/orchestrators/fan_out/keyless-1"),
    ("GET", "/instances"),
    ("GET", "/instances/"),
    ("DELETE", "/instances"),
    ("GET", "/instances/starter-1"),
    ("DELETE", "/instances/starter-1"),
    ("POST", "/instances/starter-1/terminate"),
    ("POST", "/instances/starter-1/raiseEvent/Approval"),
    ("POST", "/instances/starter-1/rewind"),
]


@pytest.mark.parametrize("base", [WEBHOOK, "/durabletask"])
@pytest.mark.parametrize(("method", "route"), DURABLE_ROUTES)
def test_every_durable_route_needs_the_system_key(
    durable_host: RunningHost, base: str, method: str, route: str
) -> None:
    endpoint = durable_host.endpoint
    for key in (False, endpoint.key):
        status, _, _ = endpoint.request(method, base + route, json={"tag": "keyless"}, key=key)
        assert status == 401, (method, base + route, key)
    assert endpoint.instance_status("keyless-1") is None  # nothing was started


def test_a_fan_out_of_500_activities_runs_each_once(durable_host: RunningHost, records: Path) -> None:
    status = run(durable_host, "fan_out", {"tag": "fan500", "count": 500}, timeout=180)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == sum(i * 2 for i in range(500))
    assert runs(records, "fan500") == Counter({str(i): 1 for i in range(500)})


def test_a_retry_succeeds_on_the_third_attempt(durable_host: RunningHost) -> None:
    status = run(durable_host, "retrying", {"tag": "retry-ok", "fail_times": 2, "attempts": 3})
    assert (status["runtimeStatus"], status["output"]) == ("Completed", "succeeded on attempt 3")


def test_a_retry_that_exhausts_its_attempts_fails_the_orchestration(
    durable_host: RunningHost, records
) -> None:
    status = run(durable_host, "retrying", {"tag": "retry-out", "fail_times": 10, "attempts": 3})
    assert status["runtimeStatus"] == "Failed"
    assert "attempt 3 failed on purpose" in json.dumps(status["output"])
    assert len((records / "retry-out-attempts").read_text().splitlines()) == 3


def test_a_durable_timer_fires_no_earlier_than_asked(durable_host: RunningHost, records: Path) -> None:
    status = run(durable_host, "sleeper", {"tag": "timer", "ms": 300})
    assert status["runtimeStatus"] == "Completed"
    assert status["lastUpdatedTime"] >= status["output"]["fired_at"][:19]
    assert runs(records, "timer") == Counter({"0": 1, "1": 1})


def test_sub_orchestrations_run_and_report_back(durable_host: RunningHost, records: Path) -> None:
    status = run(durable_host, "chunked_fan_out", {"tag": "chunks", "chunks": 3, "per_chunk": 4})
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == {"chunks": [12, 12, 12], "total": 36}
    child = durable_host.endpoint.instance_status(status["instanceId"] + "-chunk-1")
    assert (child["name"], child["runtimeStatus"]) == ("fan_out", "Completed")
    assert sum(runs(records, "chunks-2").values()) == 4


def test_continue_as_new_restarts_with_the_new_input(durable_host: RunningHost, records: Path) -> None:
    status = run(durable_host, "countdown", {"tag": "countdown", "left": 4, "seen": 0})
    assert (status["runtimeStatus"], status["output"]) == ("Completed", {"seen": 4})
    assert runs(records, "countdown") == Counter({"4": 1, "3": 1, "2": 1, "1": 1})


def test_an_external_event_raised_through_the_webhook_api_is_delivered(durable_host: RunningHost) -> None:
    started = start(durable_host, "approval")
    endpoint = durable_host.endpoint
    raise_url = started["sendEventPostUri"].replace("{eventName}", "Approval")
    status, _, _ = endpoint.request(
        "POST", raise_url[len(durable_host.url) :], json={"by": "alice"}, key=False
    )
    assert status == 202
    final = endpoint.wait_for_instance(started["id"], 30)
    assert (final["runtimeStatus"], final["output"]) == ("Completed", {"approved": {"by": "alice"}})
    assert final["customStatus"] == "waiting for approval"


def test_terminate_through_the_webhook_api(durable_host: RunningHost) -> None:
    started = start(durable_host, "approval")
    terminate_url = started["terminatePostUri"].replace("{text}", "no%20longer%20needed")
    assert durable_host.endpoint.request("POST", terminate_url[len(durable_host.url) :], key=False)[0] == 202
    final = durable_host.endpoint.wait_for_instance(started["id"], 30)
    assert final["runtimeStatus"] == "Terminated"
    assert "no longer needed" in json.dumps(final["output"])


def test_a_non_deterministic_orchestrator_is_detected_and_fails(durable_host: RunningHost) -> None:
    status = run(durable_host, "forgetful", {"tag": "forgetful"})
    assert status["runtimeStatus"] == "Failed"
    assert "Non-Deterministic workflow detected" in json.dumps(status["output"])


def test_orchestrations_and_activities_are_logged_with_their_instance(durable_host: RunningHost) -> None:
    log = durable_host.log()
    assert "durable orchestrator function=fan_out instance=starter-1" in log
    assert "durable activity function=work_item instance=starter-1" in log
    assert "function=http_start trigger=httpTrigger" in log


def test_unknown_instances_answer_404(durable_host: RunningHost) -> None:
    assert durable_host.endpoint.instance_status("no-such-instance") is None
