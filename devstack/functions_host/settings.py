"""App settings: local.settings.json `Values` into the environment (existing variables win), `%NAME%`
references resolved from them, and binding `connection` names turned into storage connection strings."""

from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

LOCAL_SETTINGS = "local.settings.json"
LOCAL_SETTINGS_SAMPLE = "local.settings.sample.json"
DEFAULT_CONNECTION = "AzureWebJobsStorage"
_SETTING_REF = re.compile(r"%([^%]+)%")


class SettingsError(ValueError):
    """local.settings.json is malformed, or a setting the app refers to is missing."""


@dataclass(frozen=True)
class LocalSettings:
    source: Path | None
    values: dict[str, str] = field(default_factory=dict)
    local_http_port: int | None = None


def load_local_settings(app_dir: Path) -> LocalSettings:
    """Parse local.settings.json, or local.settings.sample.json when the first is absent (neither: empty)."""
    for name in (LOCAL_SETTINGS, LOCAL_SETTINGS_SAMPLE):
        path = Path(app_dir) / name
        if path.is_file():
            return _parse(path)
    return LocalSettings(source=None)


def _parse(path: Path) -> LocalSettings:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"{path.name} must be a JSON object")
    if document.get("IsEncrypted", False) is not False:
        raise SettingsError(f"{path.name}: IsEncrypted must be false (encrypted settings are not supported)")
    raw_values = document.get("Values", {})
    if not isinstance(raw_values, dict):
        raise SettingsError(f"{path.name}: Values must be a JSON object of setting names to strings")
    values: dict[str, str] = {}
    for name, value in raw_values.items():
        if isinstance(value, bool):
            values[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[name] = str(value)
        else:
            raise SettingsError(f"{path.name}: Values.{name} must be a string (got {type(value).__name__})")
    port = document.get("Host", {}).get("LocalHttpPort") if isinstance(document.get("Host"), dict) else None
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise SettingsError(f"{path.name}: Host.LocalHttpPort must be a TCP port number (got {port!r})")
    return LocalSettings(source=path, values=values, local_http_port=port)


def apply_settings(values: dict[str, str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set each value not already in the environment; return the names that were set."""
    env = os.environ if environ is None else environ
    applied = []
    for name, value in values.items():
        if name not in env:
            env[name] = value
            applied.append(name)
    return applied


def resolve_setting_refs(text: str, *, what: str) -> str:
    """Replace each `%NAME%` in `text` with the app setting NAME, as the Functions host does."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SettingsError(f"{what} refers to the app setting %{name}%, which is not set")
        return os.environ[name]

    return _SETTING_REF.sub(substitute, text)


def storage_connection_string(connection: str | None, *, what: str) -> str:
    """The connection string that a binding's `connection` setting names (default AzureWebJobsStorage)."""
    name = connection or DEFAULT_CONNECTION
    for candidate in (name, f"AzureWebJobs{name}"):
        value = os.environ.get(candidate)
        if value:
            return value
    if os.environ.get(f"{name}__queueServiceUri") or os.environ.get(f"{name}__accountName"):
        raise SettingsError(
            f"{what}: connection {name!r} is identity-based; "
            f"the local host needs a connection string in the setting {name}"
        )
    raise SettingsError(
        f"{what}: connection setting {name!r} is not set (expected a storage connection string)"
    )
