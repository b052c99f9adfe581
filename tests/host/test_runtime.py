"""The host runs apps through Azure's own Python execution runtime (azure-functions-runtime): what the runtime
refuses does not start, the product app is accepted whole, and sync functions run on the runtime's thread
pool sized by PYTHON_THREADPOOL_THREAD_COUNT."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from devstack.process import free_port
from tests.fixtures.functions_host import HostFactory
from tests.host.test_startup import run_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
REFUSAL = (
    "cannot load the annotated_activity function: binding payload has invalid non-type annotation "
    "dict[str, typing.Any]"
)


def test_the_product_app_is_accepted_whole_by_azures_python_runtime() -> None:
    result = run_cli("--app-dir", str(REPO_ROOT), "--check")
    assert result.returncode == 0, result.stderr
    header, *listed = result.stdout.strip().splitlines()
    count = int(re.fullmatch(r"azure-functions-runtime accepted (\d+) functions:", header).group(1))
    names = {line.strip().split(":")[0] for line in listed}
    assert count == len(listed) == len(names)
    assert {"provision_pool", "create_pool", "grant_node_users", "start_pool"} <= names
    assert not result.stderr.strip()


def test_an_app_the_runtime_refuses_does_not_start_and_says_why(
    functions_host: HostFactory, tmp_path: Path
) -> None:
    app_dir = functions_host.prepare("refused_app")
    result = run_cli("--app-dir", str(app_dir), "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "the Python runtime refused the app: FunctionLoadError: " + REFUSAL in result.stderr
    assert "ready at" not in result.stdout
    checked = run_cli("--app-dir", str(app_dir), "--check")
    assert checked.returncode == 1 and REFUSAL in checked.stderr


def test_sync_functions_run_on_the_runtimes_thread_pool_with_its_default_size(
    functions_host: HostFactory,
) -> None:
    host = functions_host("http_app")
    status, _, body = host.endpoint.request("GET", "/api/threads")
    assert status == 200
    assert body == {"max_workers": min(32, (os.cpu_count() or 1) + 4), "in_runtime_pool": True}


def test_python_threadpool_thread_count_sizes_the_runtimes_pool(functions_host: HostFactory) -> None:
    host = functions_host("http_app", env={"PYTHON_THREADPOOL_THREAD_COUNT": "3"})
    status, _, body = host.endpoint.request("GET", "/api/threads")
    assert (status, body) == (200, {"max_workers": 3, "in_runtime_pool": True})


RELOAD_SCRIPT = """
import asyncio, json, os, sys
from devstack.functions_host.worker import PythonWorker

async def main():
    worker = PythonWorker()
    await worker.start_placeholder(sys.argv[2])
    specs = await worker.specialize(sys.argv[1], {**os.environ, "HTTP_APP_FROM_FILE": "specialized"})
    spec = next(s for s in specs if s.name == "settings")
    protos = worker.protos
    request = protos.TypedData(http=protos.RpcHttp(method="GET", url="http://127.0.0.1/api/settings"))
    result = await worker.invoke(spec, {"req": request})
    worker.stop()
    print(json.loads(result.return_value.http.body.bytes)["from_file"])

asyncio.run(main())
"""


def test_a_placeholder_worker_is_specialized_by_an_environment_reload(
    functions_host: HostFactory, tmp_path: Path
) -> None:
    """The specialization message the Functions host sends a placeholder worker: the runtime replaces the
    environment, indexes the app, and invocations see the new settings."""
    app_dir = functions_host.prepare("http_app")
    placeholder = tmp_path / "placeholder"
    placeholder.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(app_dir), str(placeholder)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "HTTP_APP_FROM_FILE": "before"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "specialized"
