"""Transient or permanent, decided in one place: which Batch answers are worth trying again, what Retry-After
asks for, what an activity answers instead of failing, and how the orchestration waits before the next try."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)

from activities._common import is_transient, retry_after_seconds, transient_answers, transient_error
from orchestrations.retrying import MAX_DELAY_SECONDS, TransientExhausted, backoff_seconds, call_batch


class Answer:
    def __init__(self, status: int, headers: dict | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}
        self.reason = "x"

    def text(self) -> str:
        return ""


def error(status: int, headers: dict | None = None, cls=HttpResponseError):
    return cls(message="boom", response=Answer(status, headers))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 507])
def test_throttling_server_errors_and_timeouts_are_transient(status):
    assert is_transient(error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412])
def test_business_errors_are_permanent(status):
    assert not is_transient(error(status))


def test_dropped_connections_and_timeouts_are_transient():
    assert is_transient(ServiceRequestError("refused"))
    assert is_transient(ServiceResponseError("connection aborted"))
    assert is_transient(TimeoutError())
    assert transient_error(ServiceResponseError("connection aborted"))["code"] == "ConnectionLost"


def test_retry_after_in_seconds_or_as_a_date_is_bounded():
    assert retry_after_seconds(error(429, {"Retry-After": "7"})) == 7
    assert retry_after_seconds(error(429, {"Retry-After": "99999999"})) == 300
    assert retry_after_seconds(error(429, {"Retry-After": "-5"})) == 0
    assert retry_after_seconds(error(429, {"Retry-After": "soon"})) is None
    later = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 20 <= retry_after_seconds(error(503, {"Retry-After": later})) <= 30
    assert transient_error(error(429, {"Retry-After": "3"}))["retryAfter"] == 3


def test_an_activity_answers_transient_instead_of_failing_and_permanent_errors_still_raise():
    @transient_answers
    def throttled(payload: dict) -> dict:
        raise error(429, {"Retry-After": "2"})

    @transient_answers
    def conflict(payload: dict) -> dict:
        raise error(409, cls=ResourceExistsError)

    assert throttled({})["transient"]["retryAfter"] == 2
    assert throttled.__name__ == "throttled"
    with pytest.raises(ResourceExistsError):
        conflict({})


def test_backoff_doubles_up_to_a_cap_and_never_undercuts_retry_after():
    assert [backoff_seconds(n) for n in (1, 2, 3)] == [2, 4, 8]
    assert backoff_seconds(20) == MAX_DELAY_SECONDS
    assert backoff_seconds(1, retry_after=30) == 30


class Context:
    """Just enough of the durable context to step call_batch: every yield advances the clock."""

    def __init__(self) -> None:
        self.current_utc_datetime = datetime(2030, 1, 1, tzinfo=UTC)
        self.timers: list[datetime] = []

    def call_activity_with_retry(self, name, options, payload):
        return ("call", name)

    def create_timer(self, fire_at):
        self.timers.append(fire_at)
        self.current_utc_datetime = fire_at
        return ("timer", fire_at)


def step(context: Context, answers: list, deadline: datetime):
    gen = call_batch(context, "create_pool", {}, deadline)
    action = next(gen)
    try:
        while True:
            action = gen.send(answers.pop(0) if action[0] == "call" else None)
    except StopIteration as done:
        return done.value


def test_the_orchestration_retries_transient_answers_until_batch_answers():
    context = Context()
    answers = [{"transient": {"code": "TooManyRequests", "retryAfter": 5}}, {"transient": {}}, {"ok": True}]
    assert step(context, answers, context.current_utc_datetime + timedelta(minutes=5)) == {"ok": True}
    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert [t - start for t in context.timers] == [timedelta(seconds=5), timedelta(seconds=9)]


def test_past_the_deadline_the_last_transient_error_is_the_failure():
    context = Context()
    answers = [{"transient": {"code": "ServerBusy", "message": "busy"}}] * 10
    with pytest.raises(TransientExhausted) as failure:
        step(context, answers, context.current_utc_datetime + timedelta(seconds=20))
    assert failure.value.error["code"] == "ServerBusy"
    assert context.current_utc_datetime <= datetime(2030, 1, 1, 0, 0, 20, tzinfo=UTC)
