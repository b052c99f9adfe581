"""host.json: parse and validate the settings the local host honours (HTTP route prefix, queue polling and
retry, durable task hub and concurrency); everything else in the file (logging, extensionBundle, ...) is
accepted and ignored."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from devstack.functions_host.timespan import parse_timespan

HOST_JSON = "host.json"
_HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")


class HostConfigError(ValueError):
    """host.json is missing, not JSON, or holds a value outside the rules for its field."""


@dataclass(frozen=True)
class HttpSettings:
    route_prefix: str = "api"


@dataclass(frozen=True)
class QueueSettings:
    batch_size: int = 16
    new_batch_threshold: int = 8
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    max_polling_interval: timedelta = timedelta(minutes=1)
    message_encoding: str = "base64"


@dataclass(frozen=True)
class DurableSettings:
    hub_name: str = "TestHubName"
    max_concurrent_activities: int = 10
    max_concurrent_orchestrators: int = 10


@dataclass(frozen=True)
class HostConfig:
    http: HttpSettings = field(default_factory=HttpSettings)
    queues: QueueSettings = field(default_factory=QueueSettings)
    durable: DurableSettings = field(default_factory=DurableSettings)


def load_host_config(app_dir: Path) -> HostConfig:
    """Read `<app_dir>/host.json`; HostConfigError naming the field and the rule on bad input."""
    path = Path(app_dir) / HOST_JSON
    if not path.is_file():
        raise HostConfigError(f"{HOST_JSON} not found in the app directory {app_dir}")
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise HostConfigError(
            f"{HOST_JSON} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return parse_host_config(document)


def parse_host_config(document: Any) -> HostConfig:
    """Validate a parsed host.json document."""
    if not isinstance(document, dict):
        raise HostConfigError(f"{HOST_JSON} must be a JSON object")
    version = document.get("version")
    if version != "2.0":
        raise HostConfigError(f'{HOST_JSON}: version must be "2.0" (got {version!r})')
    extensions = _section(document, "extensions", "extensions")
    return HostConfig(
        http=_http_settings(_section(extensions, "http", "extensions.http")),
        queues=_queue_settings(_section(extensions, "queues", "extensions.queues")),
        durable=_durable_settings(_section(extensions, "durableTask", "extensions.durableTask")),
    )


def _section(parent: dict, key: str, path: str) -> dict:
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise HostConfigError(f"{HOST_JSON}: {path} must be a JSON object")
    return value


def _int(section: dict, key: str, path: str, default: int, low: int, high: int | None = None) -> int:
    value = section.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise HostConfigError(f"{HOST_JSON}: {path}.{key} must be an integer {bounds} (got {value!r})")
    return value


def _duration(section: dict, key: str, path: str, default: timedelta, minimum: timedelta) -> timedelta:
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        result = timedelta(milliseconds=value)
    elif isinstance(value, str):
        try:
            result = parse_timespan(value)
        except ValueError as exc:
            raise HostConfigError(f"{HOST_JSON}: {path}.{key}: {exc}") from None
    else:
        raise HostConfigError(
            f'{HOST_JSON}: {path}.{key} must be a TimeSpan string like "00:00:30" '
            f"or a number of milliseconds (got {value!r})"
        )
    if result < minimum:
        raise HostConfigError(f"{HOST_JSON}: {path}.{key} must be at least {minimum} (got {value!r})")
    return result


def _http_settings(section: dict) -> HttpSettings:
    prefix = section.get("routePrefix", "api")
    if not isinstance(prefix, str):
        raise HostConfigError(f"{HOST_JSON}: extensions.http.routePrefix must be a string (got {prefix!r})")
    return HttpSettings(route_prefix=prefix.strip("/"))


def _queue_settings(section: dict) -> QueueSettings:
    path = "extensions.queues"
    batch_size = _int(section, "batchSize", path, 16, 1, 32)
    threshold = _int(section, "newBatchThreshold", path, batch_size // 2, 0)
    encoding = section.get("messageEncoding", "base64")
    if not isinstance(encoding, str) or encoding.lower() not in ("base64", "none"):
        raise HostConfigError(
            f'{HOST_JSON}: {path}.messageEncoding must be "base64" or "none" (got {encoding!r})'
        )
    return QueueSettings(
        batch_size=batch_size,
        new_batch_threshold=threshold,
        visibility_timeout=_duration(section, "visibilityTimeout", path, timedelta(0), timedelta(0)),
        max_dequeue_count=_int(section, "maxDequeueCount", path, 5, 1),
        max_polling_interval=_duration(
            section, "maxPollingInterval", path, timedelta(minutes=1), timedelta(milliseconds=100)
        ),
        message_encoding=encoding.lower(),
    )


def _durable_settings(section: dict) -> DurableSettings:
    path = "extensions.durableTask"
    hub = section.get("hubName", "TestHubName")
    if not isinstance(hub, str) or not _HUB_NAME.match(hub):
        raise HostConfigError(
            f"{HOST_JSON}: {path}.hubName must start with a letter and hold 3 to 45 letters or digits "
            f"(got {hub!r})"
        )
    return DurableSettings(
        hub_name=hub,
        max_concurrent_activities=_int(section, "maxConcurrentActivityFunctions", path, 10, 1),
        max_concurrent_orchestrators=_int(section, "maxConcurrentOrchestratorFunctions", path, 10, 1),
    )
