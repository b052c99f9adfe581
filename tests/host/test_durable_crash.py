"""Durable work survives SIGKILL of the host: a 200-activity fan-out killed mid-way and an orchestration
killed during a durable timer both complete after a restart with the right output, and each activity runs
at most twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from devstack.process import wait_until
from tests.fixtures.functions_host import HostFactory

TERMINAL = ("Completed", "Failed", "Terminated")


def runs(records: Path, tag: str) -> Counter:
    path = records / f"{tag}-runs"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def test_sigkill_in_the_middle_of_a_fan_out_then_restart(functions_host: HostFactory, tmp_path: Path) -> None:
    host = functions_host("durable_app", env={"RECORD_DIR": str(tmp_path)})
    status, _, body = host.endpoint.request(
        "POST", "/api/orchestrators/fan_out?id=crash-fan", json={"tag": "crash", "count": 200, "ms": 40}
    )
    assert status == 202, body
    wait_until(lambda: sum(runs(tmp_path, "crash").values()) >= 40, 60, "40 activities to have run")
    host.kill()
    done_before_crash = sum(runs(tmp_path, "crash").values())
    assert done_before_crash < 200, "the crash must happen while activities are still outstanding"
    host.start()
    final = host.endpoint.wait_for_instance("crash-fan", 120)
    assert (final["runtimeStatus"], final["output"]) == ("Completed", sum(i * 2 for i in range(200)))
    executions = runs(tmp_path, "crash")
    assert set(executions) == {str(i) for i in range(200)}
    assert max(executions.values()) <= 2


def test_sigkill_during_a_timer_wait_then_restart(functions_host: HostFactory, tmp_path: Path) -> None:
    host = functions_host("durable_app", env={"RECORD_DIR": str(tmp_path)})
    status, _, body = host.endpoint.request(
        "POST", "/api/orchestrators/sleeper?id=crash-timer", json={"tag": "sleep", "ms": 1500}
    )
    assert status == 202, body

    def timer_created() -> bool:
        state = host.endpoint.instance_status("crash-timer", showHistory="true")
        return any(e.get("EventType") == "TimerCreated" for e in (state or {}).get("historyEvents") or [])

    wait_until(timer_created, 30, "the durable timer to be created")
    host.kill()
    assert runs(tmp_path, "sleep") == Counter({"0": 1})
    host.start()
    final = host.endpoint.wait_for_instance("crash-timer", 60)
    assert final["runtimeStatus"] == "Completed"
    assert final["lastUpdatedTime"] >= final["output"]["fired_at"][:19]
    executions = runs(tmp_path, "sleep")
    assert set(executions) == {"0", "1"} and max(executions.values()) <= 2
