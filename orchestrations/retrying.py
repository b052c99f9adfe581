"""Calling a Batch activity until Batch gives an answer: an activity that reports `transient` (throttled, a
server error, a dropped connection) runs again after a durable-timer backoff that honours Retry-After, for as
long as the run's deadline allows; only then does the transient error become the run's failure."""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

TRANSIENT = "transient"  # the key activities/_common.transient_answers uses
# An activity that raised (a failure it could not classify) gets two more attempts before it counts.
ACTIVITY_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)
FIRST_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 60.0
# How long the runs without a deadline of their own (revoke, cleanup, reconcile, deletion) keep trying.
DEFAULT_BUDGET_SECONDS = 1800


class TransientExhausted(Exception):
    """Batch stayed unavailable until the deadline: the last transient error, as the run's failure."""

    def __init__(self, activity: str, error: dict) -> None:
        code, message = error.get("code"), error.get("message")
        super().__init__(f"{code}: {activity} kept failing until the deadline: {message}")
        self.error = {"code": error.get("code") or "ServiceUnavailable", "message": str(self)}


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Doubling delays from FIRST_DELAY_SECONDS up to MAX_DELAY_SECONDS, never shorter than Retry-After."""
    delay = min(FIRST_DELAY_SECONDS * 2 ** max(attempt - 1, 0), MAX_DELAY_SECONDS)
    return max(delay, float(retry_after or 0.0))


def deadline_after(context: df.DurableOrchestrationContext, seconds: float | None) -> datetime:
    """The run's deadline for retrying Batch: `seconds` (or DEFAULT_BUDGET_SECONDS) from now (replay-safe)."""
    return context.current_utc_datetime + timedelta(seconds=seconds or DEFAULT_BUDGET_SECONDS)


def call_batch(
    context: df.DurableOrchestrationContext, activity: str, payload: dict, deadline: datetime
) -> Generator[Any, Any, Any]:
    """The activity's answer, once it is not transient; TransientExhausted when the deadline comes first."""
    attempt = 0
    while True:
        answer = yield context.call_activity_with_retry(activity, ACTIVITY_RETRY, payload)
        if not (isinstance(answer, dict) and TRANSIENT in answer):
            return answer
        attempt += 1
        error = answer[TRANSIENT] or {}
        fire_at = context.current_utc_datetime + timedelta(
            seconds=backoff_seconds(attempt, error.get("retryAfter"))
        )
        if fire_at > deadline:
            raise TransientExhausted(activity, error)
        yield context.create_timer(fire_at)
