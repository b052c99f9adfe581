"""Where the app is and how to authenticate: the base URL, the function key and the user name, from the
environment (BATCH_SSH_URL, BATCH_SSH_KEY, BATCH_SSH_USER) or the config file ~/.config/batch-ssh/config
(mode 0600). The key never comes from a command-line flag, so it never lands in shell history."""

from __future__ import annotations

import getpass
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from batch_ssh_cli.errors import USAGE, CliError

USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
FIELDS = ("url", "key", "user")


def config_path() -> Path:
    """BATCH_SSH_CONFIG if set, else ~/.config/batch-ssh/config."""
    explicit = os.environ.get("BATCH_SSH_CONFIG")
    return Path(explicit).expanduser() if explicit else Path.home() / ".config" / "batch-ssh" / "config"


@dataclass
class Settings:
    url: str
    key: str
    user: str


def read_config_file(path: Path) -> dict[str, str]:
    """`name = value` lines (# comments); refused when group or others may read it, as ssh refuses keys."""
    if not path.exists():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CliError(
            f"{path} is readable by others (mode {mode:04o}); it holds the function key: chmod 600 {path}",
            USAGE,
        )
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip().lower()
        if not sep or name not in FIELDS:
            raise CliError(f"{path}:{number}: expected one of {', '.join(FIELDS)} as `name = value`", USAGE)
        values[name] = value.strip()
    return values


def write_config_file(path: Path, values: dict[str, str]) -> None:
    """Write the config file with mode 0600 from the start (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "# batch-ssh: the app's base URL, its function key and your user name on the nodes\n"
    text += "".join(f"{name} = {values[name]}\n" for name in FIELDS if values.get(name))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def default_user() -> str:
    """Your login name, if it is a valid Linux user name on the nodes."""
    try:
        name = getpass.getuser().lower()
    except (KeyError, OSError):
        return ""
    return name if USER_NAME.match(name) else ""


def load_settings(*, need_key: bool = True) -> Settings:
    """Environment first, then the config file; a clear message naming both when something is missing."""
    values = read_config_file(config_path())
    url = os.environ.get("BATCH_SSH_URL") or values.get("url") or ""
    key = os.environ.get("BATCH_SSH_KEY") or values.get("key") or ""
    user = os.environ.get("BATCH_SSH_USER") or values.get("user") or default_user()
    if not url:
        raise CliError(
            f"no app URL: set BATCH_SSH_URL or run `batch-ssh configure` (writes {config_path()})", USAGE
        )
    if not url.startswith(("http://", "https://")):
        raise CliError(f"the app URL must start with http:// or https:// (got {url!r})", USAGE)
    if need_key and not key:
        raise CliError(
            f"function key missing: set BATCH_SSH_KEY or run `batch-ssh configure` (writes {config_path()})",
            USAGE,
        )
    return Settings(url=url.rstrip("/"), key=key, user=user)
