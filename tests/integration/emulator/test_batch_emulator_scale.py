"""Start tasks scale like real nodes: each node runs its own, so a 2,000-node pool's start tasks all run at
once and another pool's nodes do not wait for them. The big pool's tasks block on a lock the test holds, so
"running at the same time" is a state the test waits for, not a timing."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from azure.batch import models as m

from devstack.process import wait_until

BIG = 2000


def gated_task(gate: Path) -> m.BatchStartTask:
    """A start task that waits for a shared lock on `gate` (held exclusively by the test), then succeeds."""
    return m.BatchStartTask(
        command_line='flock -s "$GATE" true',
        environment_settings=[m.EnvironmentSetting(name="GATE", value=str(gate))],
        wait_for_success=True,
        max_task_retry_count=0,
    )


def start_task_states(client, pool_id: str) -> list[tuple[str, str | None]]:
    nodes = client.list_nodes(pool_id, select=["id", "state", "startTaskInfo"])
    return [(n.state, n.start_task_info.state if n.start_task_info else None) for n in nodes]


@pytest.mark.slow
def test_a_2000_node_pool_runs_every_start_task_at_once_without_starving_another_pool(
    batch_emulator, batch_client, make_pool, wait_for_nodes, tmp_path
) -> None:
    gate = tmp_path / "gate.lock"
    gate.touch()
    with gate.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        big = make_pool(BIG, ssh=False, start_task=gated_task(gate))

        def all_running() -> bool:
            states = start_task_states(batch_client, big)
            return len(states) == BIG and all(s == ("waitingforstarttask", "running") for s in states)

        # Every node of the big pool is inside its start task at the same moment (no shared limit).
        wait_until(all_running, 300, f"{BIG} start tasks running at once", interval=1)
        assert batch_emulator.health()["startTasksRunning"] >= BIG

        # Meanwhile another pool's nodes run their start tasks and become idle.
        small = make_pool(
            3, ssh=False, start_task=m.BatchStartTask(command_line="true", wait_for_success=True)
        )
        wait_for_nodes(small, 3, timeout=120)
        assert all(s == ("waitingforstarttask", "running") for s in start_task_states(batch_client, big))

        fcntl.flock(held, fcntl.LOCK_UN)

    def all_idle() -> bool:
        states = start_task_states(batch_client, big)
        return len(states) == BIG and all(s == ("idle", "completed") for s in states)

    wait_until(all_idle, 300, f"{BIG} start tasks completed", interval=1)
