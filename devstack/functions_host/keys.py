"""Host keys for HTTP authorization: generated once into `<data dir>/host-keys.json` (mode 0600), reused
across restarts, and checked against `?code=` or the `x-functions-key` header. As on Azure, the durable
HTTP API takes the `durabletask_extension` system key (or the master key), never a function key."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

KEYS_FILE = "host-keys.json"
KEY_HEADER = "x-functions-key"
DURABLE_SYSTEM_KEY = "durabletask_extension"

ANONYMOUS = "ANONYMOUS"
FUNCTION = "FUNCTION"
ADMIN = "ADMIN"
AUTH_LEVELS = (ANONYMOUS, FUNCTION, ADMIN)


@dataclass(frozen=True)
class HostKeys:
    """The function key (FUNCTION level), the master key (FUNCTION and ADMIN levels) and the durable
    extension's system key (the durable HTTP API)."""

    function_key: str
    master_key: str
    durable_key: str

    def allows(self, auth_level: str, presented: str | None) -> bool:
        """Whether a request presenting `presented` may call a function of `auth_level`."""
        level = auth_level.upper()
        if level == ANONYMOUS:
            return True
        if not presented:
            return False
        if _same(presented, self.master_key):
            return True
        return level == FUNCTION and _same(presented, self.function_key)

    def allows_durable_api(self, presented: str | None) -> bool:
        """The durable HTTP API: the durabletask_extension system key or the master key."""
        return bool(presented) and (_same(presented, self.durable_key) or _same(presented, self.master_key))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def keys_path(data_dir: Path) -> Path:
    return Path(data_dir) / KEYS_FILE


def load_or_create_keys(data_dir: Path) -> HostKeys:
    """The keys stored under `data_dir`, created (0600) on first use; a keys file from before the durable
    system key gets one added."""
    path = keys_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        document = {
            "functionKey": secrets.token_urlsafe(32),
            "masterKey": secrets.token_urlsafe(32),
            "systemKeys": {DURABLE_SYSTEM_KEY: secrets.token_urlsafe(32)},
        }
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                json.dump(document, out)
    os.chmod(path, 0o600)
    _add_missing_system_key(path)
    return read_keys(path)


def _add_missing_system_key(path: Path) -> None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # read_keys names the problem
    if not isinstance(document, dict) or DURABLE_SYSTEM_KEY in (document.get("systemKeys") or {}):
        return
    document.setdefault("systemKeys", {})[DURABLE_SYSTEM_KEY] = secrets.token_urlsafe(32)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(document, out)
    os.replace(temporary, path)


def read_keys(path: Path) -> HostKeys:
    """Read a keys file written by load_or_create_keys."""
    try:
        document = json.loads(Path(path).read_text())
        return HostKeys(
            function_key=document["functionKey"],
            master_key=document["masterKey"],
            durable_key=document["systemKeys"][DURABLE_SYSTEM_KEY],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a valid host keys file ({type(exc).__name__}); delete it to regenerate"
        ) from None


def presented_key(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The key a request carries: `?code=` first, then the `x-functions-key` header."""
    return query.get("code") or headers.get(KEY_HEADER)
