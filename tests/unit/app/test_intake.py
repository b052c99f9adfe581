"""Receiving requests: naming a rejected request, telling a duplicate from a conflict, the rejection event."""

from __future__ import annotations

from entry.admission import run_options
from entry.verdict import (
    CONFLICT,
    DUPLICATE,
    REJECTED,
    Verdict,
    identify,
    rejection_event,
    verdict_for_existing,
)
from provisioning.identity import default_request_id, provision_instance_id
from provisioning.request import validate_request

from .conftest import NOW


def test_a_rejected_request_is_filed_under_its_pool_and_request_id_when_they_are_valid():
    assert identify(b'{"poolId": "p1", "requestId": "r-1", "vmSize": 3}', "m1") == ("p1", "r-1")
    assert identify(b'{"poolId": "p1"}', "m1") == ("p1", default_request_id("p1"))
    assert identify(b'{"poolId": "p1", "requestId": "bad id"}', "m1") == ("p1", "message-m1")
    assert identify(b'{"poolId": "bad/pool"}', "m2") == (None, "message-m2")
    assert identify(b"\xff not json", "m3") == (None, "message-m3")


def test_the_same_request_again_is_a_duplicate_and_another_one_a_conflict(valid_request, settings):
    request = validate_request(valid_request, settings, NOW).request
    options = run_options(settings, "http://127.0.0.1:7071", request.pool_id)
    assert options["statusUrl"] == "http://127.0.0.1:7071/api/pools/pool-1"
    started = {"request": request.orchestration_input(None), "options": options}
    instance_id = provision_instance_id(request.request_id)
    same = verdict_for_existing(request, {"runtimeStatus": "Completed", "input": started}, instance_id)
    assert (same.kind, same.instance_id) == (DUPLICATE, "provision-req-1")
    changed = validate_request(dict(valid_request, vmSize="Standard_D4s_v3"), settings, NOW).request
    conflict = verdict_for_existing(changed, {"runtimeStatus": "Running", "input": started}, instance_id)
    assert conflict.kind == CONFLICT and conflict.errors[0]["field"] == "requestId"


def test_the_rejection_event_carries_the_reasons():
    verdict = Verdict(
        REJECTED, "p1", "r1", errors=[{"field": "vmSize", "rule": "is required", "message": "m"}]
    )
    event = rejection_event(verdict, "msg-7", "2030-01-01T00:00:00Z")
    assert event["type"] == "request-rejected" and event["eventId"] == "request-rejected:msg-7"
    assert (event["poolId"], event["requestId"], event["errors"][0]["field"]) == ("p1", "r1", "vmSize")
