"""What every activity module shares: current settings, the service error as `{"code", "message"}`, and the
one place where a Batch error is judged transient (try again later) or permanent (the service's verdict)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)

from provisioning.settings import Settings, load_settings


def settings() -> Settings:
    """The app settings as they are now (read from the environment on every call; cheap)."""
    return load_settings()


TRANSIENT_STATUS = {408, 429}  # and every 5xx
MAX_RETRY_AFTER_SECONDS = 300  # a longer Retry-After is taken as this (the run's deadline still applies)
TRANSIENT = "transient"  # the key of an activity's answer "nothing decided, run me again later"


def is_transient(exc: BaseException) -> bool:
    """Throttling (408, 429), a server error (5xx), a timeout or a dropped or cut-short connection: worth
    trying again later (the orchestration retries under its deadline), never a verdict on the request."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError | IncompleteReadError):
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    status = getattr(exc, "status_code", None)
    return (
        isinstance(exc, HttpResponseError)
        and status is not None
        and (status in TRANSIENT_STATUS or status >= 500)
    )


def retry_after_seconds(exc: BaseException) -> float | None:
    """The service's `Retry-After` (seconds or an HTTP date), bounded to [0, MAX_RETRY_AFTER_SECONDS]."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
    except Exception:  # noqa: BLE001 - a header mapping we cannot read gives no hint
        return None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def transient_error(exc: BaseException) -> dict[str, Any]:
    """The service error of a transient failure, with the `retryAfter` it asked for (when it did)."""
    if isinstance(exc, AzureError):
        error = service_error(exc)
    else:
        error = {"code": type(exc).__name__, "message": (str(exc).splitlines() or [""])[0][:300]}
    if isinstance(exc, ServiceRequestError | ServiceResponseError | IncompleteReadError | ConnectionError):
        error["code"] = "ConnectionLost"
    wait = retry_after_seconds(exc)
    if wait is not None:
        error["retryAfter"] = wait
    return error


def transient_answers(activity: Callable[[dict], dict]) -> Callable[[dict], dict]:
    """Make a Batch activity answer `{"transient": error}` instead of raising when Batch throttled, failed on
    its side or the connection dropped: the orchestration then waits (durable timer, honouring Retry-After)
    and runs it again under its deadline (orchestrations/retrying.py). Permanent errors are untouched."""

    @functools.wraps(activity)
    def run(payload: dict) -> dict:
        try:
            return activity(payload)
        except Exception as exc:
            if not is_transient(exc):
                raise
            return {TRANSIENT: transient_error(exc)}

    return run


def service_error(exc: AzureError) -> dict[str, Any]:
    """The Batch service's error code and message (`e.error.code`), never the request that caused it."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or type(exc).__name__
    message = (str(getattr(error, "message", None) or exc.message or exc).splitlines() or [""])[0]
    details = [
        f"{d.code}: {str(d.message).splitlines()[0]}"
        for d in getattr(error, "details", None) or []
        if getattr(d, "code", None) and getattr(d, "message", None)
    ]
    if details:
        message += " (" + "; ".join(details) + ")"
    return {"code": code, "message": message}


def is_client_error(exc: HttpResponseError) -> bool:
    """A 4xx answer other than throttling: the request itself is wrong, so retrying it cannot help."""
    return exc.status_code is not None and 400 <= exc.status_code < 500 and not is_transient(exc)


def error_code(exc: HttpResponseError) -> str | None:
    return getattr(getattr(exc, "error", None), "code", None)
