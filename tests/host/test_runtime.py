"""The host runs apps through Azure's own Python execution runtime (azure-functions-runtime): what the runtime
refuses does not start, the product app is accepted whole, and sync functions run on the runtime's thread
pool sized by PYTHON_THREADPOOL_THREAD_COUNT."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from devstack.process import free_port, python_module_argv
from tests.fixtures.functions_host import HostFactory

REPO_ROOT = Path(__file__).resolve().parents[2]
REFUSAL = (
    "cannot load the annotated_activity function: binding payload has invalid non-type annotation "
    "dict[str, typing.Any]"
)


def run_host(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        python_module_argv("devstack.functions_host", *args),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_the_product_app_is_accepted_whole_by_azures_python_runtime() -> None:
    result = run_host("--app-dir", str(REPO_ROOT), "--check")
    assert result.returncode == 0, result.stderr
    header, *listed = result.stdout.strip().splitlines()
    count = int(re.fullmatch(r"azure-functions-runtime accepted (\d+) functions:", header).group(1))
    names = {line.strip().split(":")[0] for line in listed}
    assert count == len(listed) == len(names)
    assert {"provision_pool", "create_pool", "create_node_users", "start_pool"} <= names
    assert not result.stderr.strip()



def test_an_app_the_runtime_refuses_does_not_start_and_says_why(
    functions_host: HostFactory, tmp_path: Path
) -> None:
    app_dir = functions_host.prepare("refused_app")
    result = run_host("--app-dir", str(app_dir), "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "the Python runtime refused the app: FunctionLoadError: " + REFUSAL in result.stderr
    assert "ready at" not in result.stdout
    checked = run_host("--app-dir", str(app_dir), "--check")
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
