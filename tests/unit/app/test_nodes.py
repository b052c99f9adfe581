"""Node-state classification and the wait-for-idle decision."""

from __future__ import annotations

import json

import pytest

from provisioning.nodes import (
    NodeCategory,
    classify_node_state,
    next_poll_interval,
    summarize_pool,
    wait_decision,
)

ALL_STATES = {
    "idle": "ready",
    "running": "ready",
    "creating": "pending",
    "starting": "pending",
    "waitingforstarttask": "pending",
    "rebooting": "pending",
    "reimaging": "pending",
    "upgradingos": "pending",
    "unknown": "pending",
    "starttaskfailed": "failed",
    "unusable": "failed",
    "leavingpool": "unavailable",
    "offline": "unavailable",
    "preempted": "unavailable",
    "deallocated": "unavailable",
    "deallocating": "unavailable",
}


@pytest.mark.parametrize(("state", "category"), sorted(ALL_STATES.items()))
def test_every_batch_node_state_has_a_category(state, category):
    assert classify_node_state(state) is NodeCategory(category)
    assert classify_node_state(state.upper()) is NodeCategory(category)


def test_an_unknown_future_state_is_waited_for():
    assert classify_node_state("hibernating") is NodeCategory.PENDING
    assert classify_node_state(None) is NodeCategory.PENDING


def pool(allocation="steady", errors=(), state="active", dedicated=3):
    return {
        "state": state,
        "allocationState": allocation,
        "resizeErrors": list(errors),
        "targetDedicatedNodes": dedicated,
        "targetLowPriorityNodes": 0,
    }


def node(node_id, state, **extra):
    return {"id": node_id, "state": state, **extra}


def test_while_nodes_start_the_decision_is_wait_and_no_node_is_listed():
    snap = summarize_pool(pool("resizing"), [node("n1", "idle"), node("n2", "starting")])
    assert snap["counts"] == {"ready": 1, "pending": 1, "failed": 0, "unavailable": 0}
    assert snap["usable"] == 1 and not snap["settled"] and snap["problems"] == []
    assert "n1" not in json.dumps(snap)
    assert wait_decision(snap, deadline_passed=False) == {"action": "wait"}


def test_all_idle_and_steady_proceeds_with_every_node():
    snap = summarize_pool(pool(), [node("n2", "idle"), node("n1", "running"), node("n3", "idle")])
    assert wait_decision(snap, deadline_passed=False) == {"action": "proceed", "usable": 3}


def test_a_failed_start_task_is_reported_per_node_and_the_rest_proceed():
    failed = node(
        "n2",
        "starttaskfailed",
        startTaskInfo={
            "exitCode": 3,
            "failureInfo": {
                "category": "usererror",
                "code": "FailureExitCode",
                "message": "The task exited with a failure code",
            },
        },
    )
    snap = summarize_pool(
        pool(),
        [
            node("n1", "idle"),
            failed,
            node("n3", "unusable", errors=[{"code": "DiskFull", "message": "the OS disk is full"}]),
        ],
    )
    assert wait_decision(snap, deadline_passed=False) == {"action": "proceed", "usable": 1}
    assert snap["problems"] == [
        {
            "nodeId": "n2",
            "state": "starttaskfailed",
            "reason": "start task failed with exit code 3: The task exited with a failure code",
        },
        {"nodeId": "n3", "state": "unusable", "reason": "DiskFull: the OS disk is full"},
    ]


def test_no_usable_node_fails_naming_the_nodes():
    snap = summarize_pool(pool(dedicated=1), [node("n1", "starttaskfailed", startTaskInfo={"exitCode": 1})])
    decision = wait_decision(snap, deadline_passed=False)
    assert decision["action"] == "fail" and decision["code"] == "NoUsableNodes"
    assert "n1: start task failed with exit code 1" in decision["message"]


def test_a_resize_error_fails_fast_with_the_service_code_and_message():
    snap = summarize_pool(
        pool(
            "resizing", errors=[{"code": "AccountCoreQuotaReached", "message": "The core quota was reached"}]
        ),
        [],
    )
    decision = wait_decision(snap, deadline_passed=False)
    assert decision == {
        "action": "fail",
        "code": "AccountCoreQuotaReached",
        "message": "the pool could not be allocated (AccountCoreQuotaReached): The core quota was reached",
    }


def test_a_resize_error_after_some_nodes_were_allocated_goes_on_with_them_naming_the_error():
    quota = [{"code": "AccountCoreQuotaReached", "message": "The core quota was reached"}]
    snap = summarize_pool(pool("steady", errors=quota), [node("n1", "idle"), node("n2", "starting")])
    assert wait_decision(snap, deadline_passed=False) == {"action": "wait"}  # n2 is still coming
    snap = summarize_pool(pool("steady", errors=quota), [node("n1", "idle"), node("n2", "idle")])
    decision = wait_decision(snap, deadline_passed=False)
    assert decision["action"] == "proceed" and decision["usable"] == 2
    assert decision["allocationError"]["code"] == "AccountCoreQuotaReached"


def test_a_pool_being_deleted_fails():
    snap = summarize_pool(pool(state="deleting"), [])
    assert wait_decision(snap, deadline_passed=False)["code"] == "PoolBeingDeleted"


def test_at_the_deadline_ready_nodes_proceed_and_stragglers_are_reported():
    snap = summarize_pool(pool("resizing"), [node("n1", "idle"), node("n2", "starting")], list_pending=True)
    assert wait_decision(snap, deadline_passed=True) == {"action": "proceed", "usable": 1}
    assert snap["problems"] == [
        {
            "nodeId": "n2",
            "state": "starting",
            "reason": "still starting when the provisioning deadline passed",
        }
    ]


def test_at_the_deadline_with_nothing_ready_the_request_fails():
    snap = summarize_pool(pool("resizing"), [node("n1", "creating")], list_pending=True)
    decision = wait_decision(snap, deadline_passed=True)
    assert decision["code"] == "ProvisionDeadlineExceeded" and "creating" in decision["message"]


def test_backoff_doubles_up_to_the_maximum():
    intervals = [None]
    for _ in range(5):
        intervals.append(next_poll_interval(intervals[-1], 1.0, 5.0))
    assert intervals[1:] == [1.0, 2.0, 4.0, 5.0, 5.0]
