"""Start the local Functions host as a child process (`start_functions_host`) and talk to it from tests and
tools (`HostEndpoint`: base URL, keys, a small HTTP client, durable instance polling)."""

from __future__ import annotations

import json as jsonlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from multidict import CIMultiDict

from devstack.functions_host.keys import KEY_HEADER, keys_path, read_keys
from devstack.functions_host.server import default_data_dir
from devstack.process import (
    LOOPBACK,
    ManagedProcess,
    free_port,
    http_ok,
    python_module_argv,
    start_process,
    wait_until,
)

TERMINAL_STATUSES = ("Completed", "Failed", "Terminated")
DURABLE_WEBHOOK = "/runtime/webhooks/durabletask"


@dataclass
class HostEndpoint:
    """A running host: `url` (no trailing slash), the function `key`, the `master_key` and the durable
    API's `system_key`."""

    url: str
    key: str
    master_key: str
    system_key: str
    data_dir: Path

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        key: bool | str = True,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        timeout: float = 60,
    ) -> tuple[int, CIMultiDict[str], Any]:
        """(status, headers, body): case-insensitive headers; the body parsed when JSON, else text.
        `key=True` sends the function key as x-functions-key, a string sends that key, False none."""
        data = jsonlib.dumps(json).encode() if json is not None else body
        if isinstance(data, str):
            data = data.encode()
        sent = dict(headers or {})
        if json is not None:
            sent.setdefault("Content-Type", "application/json")
        if key:
            sent[KEY_HEADER] = self.key if key is True else key
        request = urllib.request.Request(self.url + path, data=data, method=method.upper(), headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return (
                    response.status,
                    CIMultiDict(response.headers.items()),
                    _decode(response.headers, response.read()),
                )
        except urllib.error.HTTPError as error:
            with error:
                return error.code, CIMultiDict(error.headers.items()), _decode(error.headers, error.read())

    def instance_status(self, instance_id: str, **query: str) -> dict | None:
        """The public durable status API's answer for one instance (None when unknown)."""
        suffix = "".join(f"&{k}={quote(str(v))}" for k, v in query.items())
        instance = quote(instance_id, safe="")
        path = f"{DURABLE_WEBHOOK}/instances/{instance}?code={quote(self.system_key)}{suffix}"
        status, _, body = self.request("GET", path, key=False)
        if status == 404:
            return None
        if status not in (200, 202):
            raise RuntimeError(f"status API answered {status} for instance {instance_id}: {body}")
        return body

    def wait_for_instance(self, instance_id: str, timeout: float, interval: float = 0.1) -> dict:
        """Poll the status API until the instance is Completed, Failed or Terminated; its status JSON."""
        seen: list[dict | None] = [None]

        def finished() -> bool:
            seen[0] = self.instance_status(instance_id)
            return bool(seen[0]) and seen[0].get("runtimeStatus") in TERMINAL_STATUSES

        try:
            wait_until(finished, timeout, f"durable instance {instance_id} to finish", interval=interval)
        except TimeoutError as exc:
            state = seen[0].get("runtimeStatus") if seen[0] else "unknown"
            raise TimeoutError(f"{exc} (last runtimeStatus: {state})") from None
        return seen[0]


def _decode(headers: Any, raw: bytes) -> Any:
    content_type = headers.get("Content-Type", "") or ""
    if "json" in content_type and raw:
        try:
            return jsonlib.loads(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", errors="replace")


def start_functions_host(
    app_dir: Path,
    *,
    port: int | None = None,
    env: dict | None = None,
    data_dir: Path | None = None,
    log_path: Path | None = None,
    timeout: float = 60,
) -> tuple[ManagedProcess, HostEndpoint]:
    """Run `python -m devstack.functions_host` for `app_dir` on a loopback port and wait until it serves."""
    app_dir = Path(app_dir).resolve()
    data_dir = Path(data_dir) if data_dir else default_data_dir(app_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = python_module_argv(
        "devstack.functions_host", "--app-dir", str(app_dir), "--host", LOOPBACK, "--port", str(port),
        "--data-dir", str(data_dir),
    )  # fmt: skip
    repo_root = Path(__file__).resolve().parents[2]
    process = start_process(
        "functions-host", argv, log_path=log_path or data_dir / "functions-host.log", env=env, cwd=repo_root
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        process.wait_ready(lambda: http_ok(url + "/admin/host/ping"), timeout=timeout)
    except BaseException:
        process.stop()
        raise
    keys = read_keys(keys_path(data_dir))
    process.info.update(url=url)
    endpoint = HostEndpoint(
        url=url,
        key=keys.function_key,
        master_key=keys.master_key,
        system_key=keys.durable_key,
        data_dir=data_dir,
    )
    return process, endpoint
