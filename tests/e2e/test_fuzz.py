"""Fuzzing the running app: a few thousand generated bodies through every body-taking HTTP route, odd path
parameters through every route, and a sample of hostile messages through the request queue. No answer is a
5xx, no message is poisoned, every queue message gets a `request-rejected` event, and rejected input never
reaches Batch (the emulator counts zero calls). The app runs on its own host and emulator here, so the
counters see nothing but this traffic."""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from urllib.parse import quote

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.batch_emulator.launcher import start_batch_emulator
from devstack.process import wait_until
from tests.fixtures.batch_emulator import random_ssh_network
from tests.request_strategies import JSON_VALUES, mutated

from .conftest import app_host

BODIES_PER_ROUTE = int(os.environ.get("FUZZ_BODIES", "1500"))
QUEUE_SAMPLE = 120
REQUESTS, EVENTS = "fuzz-requests", "fuzz-events"


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory, azurite):
    """The app with its own emulator and queues; no timers acting on Batch."""
    proc, batch = start_batch_emulator(
        tmp_path_factory.mktemp("fuzz-batch"), ssh_network=random_ssh_network(), timing="fast"
    )
    env = {
        "REQUEST_QUEUE_NAME": REQUESTS,
        "EVENTS_QUEUE_NAME": EVENTS,
        "CLEANUP_SCHEDULE": "0 0 0 1 1 *",
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "MAX_NODES_PER_REQUEST": "10",
        "MAX_ACCESS_DURATION": "P1D",
    }
    try:
        with app_host(tmp_path_factory, azurite, batch, env) as stack:
            batch.reset_counters()
            yield stack
    finally:
        proc.stop()


def bodies() -> st.SearchStrategy[bytes]:
    junk = st.one_of(
        st.binary(max_size=2000),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.sampled_from(
            [b"[" * 5000, b'{"users": ' + b"[" * 50_000, b"1" * 5000, b'{"a": NaN}', b"\xff\xfe"]
        ),
    )
    requests = st.one_of(mutated("pool"), mutated("grant")).map(lambda pair: json.dumps(pair[0]).encode())
    return st.one_of(requests, requests, junk)


SEGMENTS = st.one_of(
    st.text(min_size=1, max_size=80),
    st.sampled_from(["pool-1\n", "a" * 65, "..", "%", "x\u0000y", "é", "alice\n", "A" * 5000, "pool 1"]),
)


def _sent(status: int, seen: Counter, what: str) -> None:
    seen[status // 100] += 1
    assert status < 500, what


@pytest.mark.slow
def test_generated_bodies_and_path_parameters_never_get_a_5xx_nor_a_batch_call(fuzz_stack):
    seen: Counter = Counter()
    routes = ["/api/pools", "/api/pools/pool-1/access"]

    @settings(max_examples=BODIES_PER_ROUTE, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(body=bodies(), route=st.sampled_from(routes))
    def post(body: bytes, route: str) -> None:
        status, _, answer = fuzz_stack.host.request("POST", route, body=body)
        _sent(status, seen, f"POST {route} {body[:200]!r} -> {status} {answer}")
        assert status == 400, (status, answer)

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(segment=SEGMENTS, other=SEGMENTS, body=bodies())
    def paths(segment: str, other: str, body: bytes) -> None:
        pool, user = quote(segment, safe=""), quote(other, safe="")
        for method, path, data in [
            ("GET", f"/api/pools/{pool}", None),
            ("GET", f"/api/pools/{pool}/connections?format={user}", None),
            ("DELETE", f"/api/pools/{pool}", None),
            ("DELETE", f"/api/pools/{pool}/users/{user}", None),
            ("GET", f"/api/users/{user}/access", None),
            ("POST", f"/api/pools/{pool}/access", body),
        ]:
            status, _, answer = fuzz_stack.host.request(method, path, body=data)
            _sent(status, seen, f"{method} {path} -> {status} {answer}")

    post()
    paths()
    assert fuzz_stack.batch.counters()["total"] == 0
    assert seen[5] == 0 and sum(seen.values()) >= 2 * BODIES_PER_ROUTE


def _queue(stack, name: str) -> QueueClient:
    client = QueueClient.from_connection_string(stack.connection_string, name)
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    return client


@pytest.mark.slow
def test_hostile_queue_messages_are_rejected_with_an_event_never_poisoned(fuzz_stack):
    batch_calls = fuzz_stack.batch.counters()["total"]
    requests, events, poison = (_queue(fuzz_stack, n) for n in (REQUESTS, EVENTS, REQUESTS + "-poison"))
    messages: list[str] = [
        "not base64 at all {}",
        "%%%%",
        base64.b64encode(b"\xff\xfe\xfd not utf-8").decode(),
        base64.b64encode(b"[" * 5000).decode(),
        base64.b64encode(
            b'{"poolId": "p", "users": [{"name": "a", "expiry": "9999-12-31T23:59:59-01:00"}]}'
        ).decode(),
        base64.b64encode(
            b'{"kind": "grant-access", "poolId": "p", "users": [{"name": "a", "expiry": "P999999999D"}]}'
        ).decode(),
        base64.b64encode(b'{"kind": "delete-everything"}').decode(),
        base64.b64encode(b"1" * 40_000).decode(),
    ]

    @settings(max_examples=QUEUE_SAMPLE - len(messages), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(body=bodies())
    def collect(body: bytes) -> None:
        encoded = base64.b64encode(body).decode()
        if len(encoded) <= 60_000:  # a queue message holds 64 KiB
            messages.append(encoded)

    collect()
    ids = {requests.send_message(m).id for m in messages}

    rejected: set[str] = set()

    def all_rejected() -> bool:
        for message in events.receive_messages(max_messages=32, visibility_timeout=60):
            event = json.loads(base64.b64decode(message.content))
            if event.get("type") == "request-rejected":
                rejected.add(event.get("messageId"))
            events.delete_message(message)
        return ids <= rejected

    wait_until(all_rejected, 300, f"a request-rejected event for each of {len(ids)} messages", interval=0.5)
    assert requests.get_queue_properties().approximate_message_count == 0
    assert list(poison.peek_messages(max_messages=32)) == []
    assert fuzz_stack.batch.counters()["total"] == batch_calls
