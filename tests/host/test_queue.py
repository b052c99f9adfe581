"""Queue triggers through the host: processing with an output binding, base64 decoding, retries after
visibilityTimeout, poison queue after maxDequeueCount, HTTP with a queue output, messageEncoding none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.storage.queue import BinaryBase64EncodePolicy, TextBase64EncodePolicy

from devstack.process import wait_until
from tests.fixtures.functions_host import HostFactory, RunningHost
from tests.host.queue_helpers import await_messages, decoded, queue_client, queue_is_empty


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("queue-records")


@pytest.fixture(scope="module")
def queue_host(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, records: Path
) -> RunningHost:
    factory = HostFactory(request, tmp_path_factory.mktemp("queue"))
    try:
        yield factory("queue_app", env={"RECORD_DIR": str(records)}, storage=True)
    finally:
        factory.stop_all()


def test_message_is_processed_and_the_output_binding_written(queue_host: RunningHost, azurite) -> None:
    conn = azurite.connection_string
    inbox = queue_client(conn, "hostq-echo-in", message_encode_policy=TextBase64EncodePolicy())
    sent = inbox.send_message("hello queue")
    [output] = await_messages(decoded(conn, "hostq-echo-out"), 1)
    seen = json.loads(output)
    assert seen == {
        "body": "hello queue",
        "id": sent.id,
        "dequeue_count": 1,
        "has_times": True,
        "has_pop_receipt": True,
    }
    wait_until(lambda: queue_is_empty(inbox), 10, "the processed message to be deleted")


def test_binary_base64_bodies_are_decoded(queue_host: RunningHost, azurite) -> None:
    conn = azurite.connection_string
    inbox = queue_client(conn, "hostq-binary", message_encode_policy=BinaryBase64EncodePolicy())
    inbox.send_message(b"\x00\xff\x10binary")
    assert await_messages(decoded(conn, "hostq-binary-out"), 1) == [b"\x00\xff\x10binary".hex()]


def test_a_failed_message_becomes_visible_again_and_is_retried(queue_host: RunningHost, azurite) -> None:
    conn = azurite.connection_string
    queue_client(conn, "hostq-retry", message_encode_policy=TextBase64EncodePolicy()).send_message("retry me")
    assert await_messages(decoded(conn, "hostq-retry-out"), 1) == ["done after 2 attempts"]


def test_after_max_dequeue_count_failures_the_message_moves_to_poison(
    queue_host: RunningHost, azurite, records: Path
) -> None:
    conn = azurite.connection_string
    queue_client(conn, "hostq-flaky", message_encode_policy=TextBase64EncodePolicy()).send_message("doomed")
    assert await_messages(decoded(conn, "hostq-flaky-poison"), 1) == ["doomed"]
    attempts = (records / "flaky.log").read_text().split("\n")[:-1]
    assert attempts == ["doomed 1", "doomed 2", "doomed 3"]
    assert queue_is_empty(queue_client(conn, "hostq-flaky"))
    assert queue_host.log().count("function=always_fails trigger=queueTrigger") == 3


def test_a_message_that_is_not_base64_goes_to_poison_without_an_invocation(
    queue_host: RunningHost, azurite
) -> None:
    conn = azurite.connection_string
    queue_client(conn, "hostq-echo-in").send_message("not base64 at all!")
    assert await_messages(queue_client(conn, "hostq-echo-in-poison"), 1) == ["not base64 at all!"]


def test_http_function_with_a_queue_output(queue_host: RunningHost, azurite) -> None:
    status, _, _ = queue_host.endpoint.request("POST", "/api/enqueue", body="first", key=False)
    assert status == 202
    messages = await_messages(decoded(azurite.connection_string, "hostq-http-out"), 2)
    assert sorted(messages) == ["first", "second"]


def test_message_encoding_none_passes_text_through(
    functions_host: HostFactory, azurite, tmp_path: Path
) -> None:
    functions_host(
        "queue_app",
        env={"RECORD_DIR": str(tmp_path), "ECHO_QUEUE": "hostq-plain-in"},
        host_json={"extensions": {"queues": {"messageEncoding": "none"}}},
        storage=True,
    )
    conn = azurite.connection_string
    queue_client(conn, "hostq-plain-in").send_message("plain text")
    [output] = await_messages(queue_client(conn, "hostq-echo-out"), 1)
    assert json.loads(output)["body"] == "plain text"
