"""The app's settings, from environment variables (app settings in Azure, local.settings.json locally)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from provisioning.durations import DurationError, parse_duration

DEFAULTS: dict[str, str] = {
    "REQUEST_QUEUE_NAME": "pool-requests",
    "EVENTS_QUEUE_NAME": "pool-events",
    "CONNECTIONS_TABLE_NAME": "sshconnections",
    "REQUESTS_TABLE_NAME": "poolrequests",
    "MAX_NODES_PER_REQUEST": "100",
    "MAX_ACCESS_DURATION": "P7D",
    "DEFAULT_ACCESS_DURATION": "P1D",
    "PROVISION_DEADLINE": "PT30M",
    "IDLE_POLL_INTERVAL": "PT5S/PT1M",
    "CLEANUP_SCHEDULE": "0 */5 * * * *",
    "DELETE_POOL_ON_FAILURE": "false",
    "POOLS_TABLE_NAME": "managedpools",
    "RECONCILE_SCHEDULE": "0 */5 * * * *",
    "DEFAULT_SSH_SOURCE_PREFIXES": "",
    "MAX_POOL_LIFETIME": "P30D",
    "BATCH_CONCURRENCY": "32",
}

STORAGE = "AzureWebJobsStorage"
# Functions defines `__accountName` for the public cloud only; any other cloud sets the service URIs
# (`__queueServiceUri`, `__tableServiceUri`), which the deployment template takes from the storage account.
ACCOUNT_NAME_SUFFIX = "core.windows.net"
STORAGE_SERVICES = ("queue", "table")
MANAGED_IDENTITY = "managedidentity"

_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the setting and the rule."""


@dataclass(frozen=True)
class Settings:
    """Every setting the app reads, parsed and checked."""

    batch_account_url: str | None
    batch_account_name: str | None
    batch_account_key: str | None = field(repr=False)
    storage_connection: str | None = field(repr=False)
    storage_account_name: str | None
    storage_service_uris: dict[str, str]
    storage_credential: str | None
    storage_client_id: str | None
    storage_identity_resource_id: str | None
    azure_client_id: str | None
    batch_auth_scope: str | None
    request_queue: str
    events_queue: str
    connections_table: str
    requests_table: str
    max_nodes_per_request: int
    max_access_duration: timedelta
    default_access_duration: timedelta
    provision_deadline: timedelta
    idle_poll_first: timedelta
    idle_poll_max: timedelta
    cleanup_schedule: str
    password_encryption_key: str | None = field(repr=False)
    delete_pool_on_failure: bool
    app_base_url: str | None
    pools_table: str = "managedpools"
    reconcile_schedule: str = "0 */5 * * * *"
    default_ssh_source_prefixes: tuple[str, ...] = ()
    max_pool_lifetime: timedelta = timedelta(days=30)
    batch_concurrency: int = 32  # Batch calls in flight per worker process when granting users

    @property
    def passwords_enabled(self) -> bool:
        return bool(self.password_encryption_key)

    def require_storage(self) -> None:
        """Raise SettingsError unless storage is configured (a connection string or identity-based)."""
        if self.storage_connection:
            return
        if not self.storage_account_name and not self.storage_service_uris:
            raise SettingsError(
                f"{STORAGE}: is required (a connection string; or, identity-based, "
                f"{STORAGE}__queueServiceUri and {STORAGE}__tableServiceUri, or {STORAGE}__accountName)"
            )
        for service in STORAGE_SERVICES:
            self.storage_service_uri(service)

    def storage_service_uri(self, service: str) -> str:
        """The endpoint of `service` (queue, table, blob) for an identity-based connection: the setting
        `AzureWebJobsStorage__{service}ServiceUri`, else built from `__accountName` as Functions does."""
        uri = self.storage_service_uris.get(service)
        if uri:
            return uri
        if self.storage_account_name:
            return f"https://{self.storage_account_name}.{service}.{ACCOUNT_NAME_SUFFIX}"
        raise SettingsError(
            f"{STORAGE}__{service}ServiceUri: is required when {STORAGE} has no connection string and no "
            f"{STORAGE}__accountName"
        )

    def require_batch(self) -> None:
        """Raise SettingsError unless the Batch account is configured."""
        if not self.batch_account_url:
            raise SettingsError(
                "BATCH_ACCOUNT_URL: is required (e.g. https://ACCOUNT.REGION.batch.azure.com)"
            )
        if self.batch_account_key and not self.batch_account_name:
            raise SettingsError("BATCH_ACCOUNT_NAME: is required when BATCH_ACCOUNT_KEY is set")


def _get(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    return DEFAULTS.get(name, "") if value is None or value.strip() == "" else value.strip()


def _duration(env: Mapping[str, str], name: str, text: str | None = None) -> timedelta:
    try:
        return parse_duration(text if text is not None else _get(env, name))
    except DurationError as exc:
        raise SettingsError(f"{name}: {exc}") from exc


def _int(env: Mapping[str, str], name: str, minimum: int) -> int:
    text = _get(env, name)
    try:
        value = int(text)
    except ValueError as exc:
        raise SettingsError(f"{name}: must be a whole number") from exc
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    text = _get(env, name).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SettingsError(f"{name}: must be true or false")


def _name(env: Mapping[str, str], name: str, pattern: re.Pattern[str], rule: str) -> str:
    value = _get(env, name)
    if not pattern.match(value):
        raise SettingsError(f"{name}: must be {rule}")
    return value


def _poll_intervals(env: Mapping[str, str]) -> tuple[timedelta, timedelta]:
    """IDLE_POLL_INTERVAL is `FIRST/MAX` (exponential backoff) or one value (a fixed interval)."""
    parts = _get(env, "IDLE_POLL_INTERVAL").split("/")
    if len(parts) > 2:
        raise SettingsError("IDLE_POLL_INTERVAL: must be FIRST or FIRST/MAX, e.g. PT5S/PT1M")
    first = _duration(env, "IDLE_POLL_INTERVAL", parts[0])
    last = _duration(env, "IDLE_POLL_INTERVAL", parts[-1])
    if last < first:
        raise SettingsError("IDLE_POLL_INTERVAL: the maximum interval must not be shorter than the first")
    return first, last


def _uri(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(name) or "").strip().rstrip("/")
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
        raise SettingsError(
            f"{name}: must be an absolute https URL, e.g. https://ACCOUNT.queue.core.windows.net"
        )
    return value


def _storage_identity(env: Mapping[str, str]) -> dict[str, object]:
    """The identity-based connection settings of AzureWebJobsStorage, as Azure Functions defines them."""
    uris = {}
    for service in (*STORAGE_SERVICES, "blob"):
        uri = _uri(env, f"{STORAGE}__{service}ServiceUri")
        if uri:
            uris[service] = uri
    credential = (env.get(f"{STORAGE}__credential") or "").strip().lower() or None
    if credential not in (None, MANAGED_IDENTITY):
        raise SettingsError(f"{STORAGE}__credential: must be {MANAGED_IDENTITY} (or unset)")
    client_id = (env.get(f"{STORAGE}__clientId") or "").strip() or None
    resource_id = (env.get(f"{STORAGE}__managedIdentityResourceId") or "").strip() or None
    if client_id and resource_id:
        raise SettingsError(
            f"{STORAGE}__managedIdentityResourceId: must not be set together with {STORAGE}__clientId"
        )
    return {
        "storage_account_name": (env.get(f"{STORAGE}__accountName") or "").strip() or None,
        "storage_service_uris": uris,
        "storage_credential": credential,
        "storage_client_id": client_id,
        "storage_identity_resource_id": resource_id,
    }


def _prefixes(env: Mapping[str, str]) -> tuple[str, ...]:
    """DEFAULT_SSH_SOURCE_PREFIXES: IPs or CIDRs separated by commas or spaces, or `*`; empty means none."""
    import ipaddress

    values = tuple(p for p in re.split(r"[,\s]+", _get(env, "DEFAULT_SSH_SOURCE_PREFIXES")) if p)
    for value in values:
        if value == "*":
            continue
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise SettingsError(
                f"DEFAULT_SSH_SOURCE_PREFIXES: {value!r} is not an IP address or CIDR prefix (or *)"
            ) from exc
    if "*" in values and len(values) > 1:
        raise SettingsError('DEFAULT_SSH_SOURCE_PREFIXES: must not combine "*" with other prefixes')
    return values


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parse the settings from `env` (default os.environ); raise SettingsError naming a bad one."""
    env = os.environ if env is None else env
    first, last = _poll_intervals(env)
    max_access = _duration(env, "MAX_ACCESS_DURATION")
    default_access = _duration(env, "DEFAULT_ACCESS_DURATION")
    key = env.get("PASSWORD_ENCRYPTION_KEY") or None
    if key:
        from provisioning.passwords import PasswordCipher

        PasswordCipher(key)  # raises SettingsError naming the setting when malformed
    base_url = (env.get("APP_BASE_URL") or "").strip().rstrip("/") or None
    if not base_url and env.get("WEBSITE_HOSTNAME"):
        base_url = f"https://{env['WEBSITE_HOSTNAME'].strip()}"
    return Settings(
        batch_account_url=(env.get("BATCH_ACCOUNT_URL") or "").strip().rstrip("/") or None,
        batch_account_name=(env.get("BATCH_ACCOUNT_NAME") or "").strip() or None,
        batch_account_key=env.get("BATCH_ACCOUNT_KEY") or None,
        storage_connection=(env.get(STORAGE) or "").strip() or None,
        **_storage_identity(env),
        azure_client_id=(env.get("AZURE_CLIENT_ID") or "").strip() or None,
        batch_auth_scope=(env.get("BATCH_AUTH_SCOPE") or "").strip() or None,
        request_queue=_name(
            env, "REQUEST_QUEUE_NAME", _QUEUE_NAME, "3-63 lower-case letters, digits and hyphens"
        ),
        events_queue=_name(
            env, "EVENTS_QUEUE_NAME", _QUEUE_NAME, "3-63 lower-case letters, digits and hyphens"
        ),
        connections_table=_name(
            env, "CONNECTIONS_TABLE_NAME", _TABLE_NAME, "3-63 letters and digits, starting with a letter"
        ),
        requests_table=_name(
            env, "REQUESTS_TABLE_NAME", _TABLE_NAME, "3-63 letters and digits, starting with a letter"
        ),
        max_nodes_per_request=_int(env, "MAX_NODES_PER_REQUEST", 1),
        max_access_duration=max_access,
        default_access_duration=min(default_access, max_access),
        provision_deadline=_duration(env, "PROVISION_DEADLINE"),
        idle_poll_first=first,
        idle_poll_max=last,
        cleanup_schedule=_get(env, "CLEANUP_SCHEDULE"),
        password_encryption_key=key,
        delete_pool_on_failure=_bool(env, "DELETE_POOL_ON_FAILURE"),
        app_base_url=base_url,
        pools_table=_name(
            env, "POOLS_TABLE_NAME", _TABLE_NAME, "3-63 letters and digits, starting with a letter"
        ),
        reconcile_schedule=_get(env, "RECONCILE_SCHEDULE"),
        default_ssh_source_prefixes=_prefixes(env),
        max_pool_lifetime=_duration(env, "MAX_POOL_LIFETIME"),
        batch_concurrency=_int(env, "BATCH_CONCURRENCY", 1),
    )
