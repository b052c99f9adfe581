"""A client this project did not write: the JavaScript SDK (@azure/batch from npm, pinned in package.json)
walks the emulator from supported images to pool deletion, and the user it creates really logs in over SSH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
WALK = REPO_ROOT / "devstack" / "batch_emulator" / "walks" / "js_walk.js"
STEPS = [
    "client",
    "supported-images",
    "create-pool",
    "get-pool",
    "list-pools",
    "resize-pool",
    "list-nodes",
    "users-ready",
    "replace-user",
    "delete-user",
    "delete-pool",
    "pool-gone",
    "done",
]


def test_the_javascript_sdk_walks_the_emulator(batch_emulator, rsa_key, tools, tmp_path) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for this test (Node 20+)"
    assert (REPO_ROOT / "node_modules" / "@azure" / "batch").is_dir(), "run `npm ci` (make setup) first"
    pool_id = f"js-walk-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BATCH_ACCOUNT_URL": batch_emulator.url,
        "BATCH_ACCOUNT_NAME": batch_emulator.account,
        "BATCH_ACCOUNT_KEY": batch_emulator.key,
        "WALK_POOL_ID": pool_id,
        "WALK_SSH_PUBLIC_KEY": tools.public_key(rsa_key),
        "WALK_FRONTEND_PORT": "42000",
    }
    stderr_path = tmp_path / "js-walk.stderr"
    with stderr_path.open("w") as stderr_file:
        proc = subprocess.Popen(
            [node, str(WALK)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        )
    steps: list[dict] = []
    logins: list[str] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in iter(proc.stdout.readline, ""):
            step = json.loads(line)
            steps.append(step)
            if step["step"] == "users-ready":
                for endpoint in step["endpoints"]:
                    result = tools.ssh(rsa_key, "walker", endpoint["ip"], endpoint["port"], "hostname")
                    assert result.returncode == 0, result.stderr
                    logins.append(result.stdout.strip())
                proc.stdin.write("continue\n")
                proc.stdin.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = stderr_path.read_text()
    assert proc.returncode == 0, f"{steps[-1:]} {stderr}"
    assert [s["step"] for s in steps] == STEPS
    by_step = {s["step"]: s for s in steps}
    assert by_step["client"]["apiVersion"] == "2022-10-01.16.0"
    assert by_step["list-nodes"]["states"] == ["idle", "idle"]
    assert by_step["list-nodes"]["startTasks"] == ["success", "success"]
    # `hostname` on a node prints the node id: the JavaScript-created user reached each node.
    assert sorted(logins) == sorted(e["node"] for e in by_step["users-ready"]["endpoints"])
