"""What every activity module shares: current settings and the service error as `{"code", "message"}`."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError, ServiceResponseError

from provisioning.settings import Settings, load_settings


def settings() -> Settings:
    """The app settings as they are now (read from the environment on every call; cheap)."""
    return load_settings()


TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def is_transient(exc: AzureError) -> bool:
    """Throttling, a server error, a timeout or a dropped connection: worth trying again later (the
    orchestration retries), never a verdict on the request."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(exc, HttpResponseError) and status in TRANSIENT_STATUS


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
