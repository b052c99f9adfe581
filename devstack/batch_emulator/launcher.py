"""Start the Batch emulator as a managed child process and talk to it: `start_batch_emulator` and the
`BatchEmulatorEndpoint` (SDK client factory, control-API shortcuts)."""

from __future__ import annotations

import json as _json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.batch_emulator import DEV_ACCOUNT, DEV_KEY
from devstack.process import LOOPBACK, ManagedProcess, free_port, http_ok, python_module_argv, start_process

CONTROL_PREFIX = "/_emulator"


class ControlError(RuntimeError):
    """The control API refused a call (the message is its explanation)."""


@dataclass(frozen=True)
class BatchEmulatorEndpoint:
    """Where a running emulator listens and the account to use; `.client()` builds a real azure-batch
    client."""

    url: str
    account: str = DEV_ACCOUNT
    key: str = field(default=DEV_KEY, repr=False)

    @property
    def control_url(self) -> str:
        return self.url + CONTROL_PREFIX

    def client(self, **kwargs: Any):  # -> azure.batch.BatchClient
        """A BatchClient(url, AzureNamedKeyCredential(account, key)); kwargs go to BatchClient (e.g.
        retry_total)."""
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential

        return BatchClient(self.url, AzureNamedKeyCredential(self.account, self.key), **kwargs)

    def control(self, method: str, path: str, json: dict | None = None) -> dict:
        """Call /_emulator/<path> with an optional JSON body; returns the JSON answer (ControlError on
        4xx/5xx)."""
        target = self.control_url + "/" + path.lstrip("/")
        data = _json.dumps(json).encode() if json is not None else None
        request = urllib.request.Request(target, data=data, method=method.upper())
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ControlError(f"{method.upper()} {target} -> {exc.code}: {detail}") from exc
        return _json.loads(raw) if raw else {}

    def health(self) -> dict:
        return self.control("GET", "health")

    def counters(self) -> dict:
        """{"calls": {operation: n}, "injected": {operation: n}, "total": n}."""
        return self.control("GET", "counters")

    def reset_counters(self) -> dict:
        return self.control("POST", "counters/reset")

    def inject_fault(self, operation: str = "*", **spec: Any) -> dict:
        """An HTTP fault for `operation` (an SDK method name such as 'get_pool', or '*'): status=429|500|503,
        drop=True, latency_ms=..., retry_after=..., count=N (next N calls) or rate=0..1; after=True performs
        the operation first and then answers 500 or drops the connection (status=500 or drop=True)."""
        names = {"latency_ms": "latencyMs", "retry_after": "retryAfter"}
        return self.control(
            "POST", "faults", {"operation": operation, **{names.get(k, k): v for k, v in spec.items()}}
        )

    def inject_resize_error(
        self,
        code: str = "AccountCoreQuotaReached",
        *,
        pool_id: str | None = None,
        allocate: int = 0,
        message: str | None = None,
    ) -> dict:
        """The next allocation (create or resize up) grants only `allocate` nodes and records this resize
        error."""
        body: dict[str, Any] = {"code": code, "allocate": allocate}
        if pool_id is not None:
            body["poolId"] = pool_id
        if message is not None:
            body["message"] = message
        return self.control("POST", "faults/resize-error", body)

    def fail_start_tasks(
        self,
        *,
        pool_id: str | None = None,
        node_indexes: list[int] | None = None,
        count: int | None = None,
        exit_code: int = 1,
    ) -> dict:
        """Nodes of the next allocation end in starttaskfailed with `exit_code` (all, by index, or the first
        N)."""
        body: dict[str, Any] = {"exitCode": exit_code}
        body.update(
            {
                k: v
                for k, v in (("poolId", pool_id), ("nodeIndexes", node_indexes), ("count", count))
                if v is not None
            }
        )
        return self.control("POST", "faults/start-task-failure", body)

    def make_unusable(
        self,
        *,
        pool_id: str | None = None,
        node_indexes: list[int] | None = None,
        count: int | None = None,
        after_seconds: float = 0.0,
    ) -> dict:
        """Nodes of the next allocation turn unusable `after_seconds` after reaching their final state."""
        body: dict[str, Any] = {"afterSeconds": after_seconds}
        body.update(
            {
                k: v
                for k, v in (("poolId", pool_id), ("nodeIndexes", node_indexes), ("count", count))
                if v is not None
            }
        )
        return self.control("POST", "faults/unusable", body)

    def set_node_state(self, pool_id: str, node_id: str, state: str) -> dict:
        return self.control("POST", f"pools/{pool_id}/nodes/{node_id}/state", {"state": state})

    def pool_nodes(self, pool_id: str) -> dict:
        """The emulator's view of a pool's nodes: id, index, state, node directory (root), ssh endpoint,
        users."""
        return self.control("GET", f"pools/{pool_id}/nodes")

    def clear_faults(self) -> dict:
        return self.control("DELETE", "faults")

    def reset(self) -> dict:
        """Delete every pool at once and clear faults and counters."""
        return self.control("POST", "reset")


def start_batch_emulator(
    work_dir: Path,
    *,
    port: int | None = None,
    ssh_network: str | None = None,
    catalog: Path | None = None,
    timing: str = "fast",
    log_path: Path | None = None,
    user_expiry: str | None = None,
    extra_args: list[str] | None = None,
) -> tuple[ManagedProcess, BatchEmulatorEndpoint]:
    """Launch `python -m devstack.batch_emulator` on a free loopback port (node data under work_dir/data) and
    wait until GET /_emulator/health answers. `user_expiry="second"` makes node users stop logging in exactly
    at expiryTime instead of at the end of its day (the service's Linux behaviour, the default)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    chosen_port = port or free_port(LOOPBACK)
    argv = python_module_argv(
        "devstack.batch_emulator",
        "--host",
        LOOPBACK,
        "--port",
        str(chosen_port),
        "--timing",
        timing,
        "--data-dir",
        str(work_dir / "data"),
        "--exit-with-parent",
    )
    if ssh_network:
        argv += ["--ssh-network", ssh_network]
    if catalog:
        argv += ["--catalog", str(catalog)]
    if user_expiry:
        argv += ["--user-expiry", user_expiry]
    argv += list(extra_args or [])
    proc = start_process(
        "batch-emulator",
        argv,
        log_path=log_path or work_dir / "batch-emulator.log",
        cwd=Path(__file__).resolve().parents[2],
    )
    endpoint = BatchEmulatorEndpoint(url=f"http://{LOOPBACK}:{chosen_port}")
    try:
        proc.wait_ready(lambda: http_ok(endpoint.control_url + "/health"), timeout=60)
    except BaseException:
        proc.stop()
        raise
    proc.info["url"] = endpoint.url
    return proc, endpoint
