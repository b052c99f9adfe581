"""Host start-up through the CLI: unsupported bindings are refused by name, non-loopback addresses and bad
host.json are refused with a clear message, and nothing is left running."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack.process import free_port, python_module_argv
from tests.fixtures.functions_host import HostFactory

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m devstack.functions_host ARGS` from the repository root, with a minimal environment."""
    return subprocess.run(
        python_module_argv("devstack.functions_host", *args),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_unsupported_bindings_are_refused_at_start_by_name(
    functions_host: HostFactory, tmp_path: Path
) -> None:
    app_dir = functions_host.prepare("unsupported_app")
    result = run_cli("--app-dir", str(app_dir), "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "function 'read_rows': binding type 'table'" in result.stderr
    assert "function 'on_upload': trigger type 'blobTrigger'" in result.stderr
    assert "fine" not in result.stderr


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.10", "::1", "localhost"])
def test_only_loopback_addresses_are_accepted(address: str, tmp_path: Path) -> None:
    result = run_cli("--app-dir", str(tmp_path), "--host", address)
    assert result.returncode == 2
    assert "--host must be an IPv4 loopback address in 127.0.0.0/8" in result.stderr


def test_a_host_json_that_is_not_json_is_refused_with_its_position(
    functions_host: HostFactory, tmp_path: Path
) -> None:
    app_dir = functions_host.prepare("http_app")
    (app_dir / "host.json").write_text('{"version": "2.0",\n  "extensions": {]\n}')
    result = run_cli("--app-dir", str(app_dir), "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "host.json is not valid JSON" in result.stderr and "line 2" in result.stderr


def test_a_bad_host_json_value_is_refused_naming_the_field(
    functions_host: HostFactory, tmp_path: Path
) -> None:
    app_dir = functions_host.prepare("queue_app", host_json={"extensions": {"queues": {"batchSize": 64}}})
    result = run_cli("--app-dir", str(app_dir), "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "extensions.queues.batchSize must be an integer from 1 to 32 (got 64)" in result.stderr


def test_sigterm_stops_the_host_cleanly(functions_host: HostFactory) -> None:
    host = functions_host("http_app")
    host.process.stop()
    assert host.process.popen.returncode == 0
    assert host.log().rstrip().endswith("functions_host: stopped")
