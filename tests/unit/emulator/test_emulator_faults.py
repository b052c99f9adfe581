"""Fault registry rules: which calls an injected fault hits, and how bad fault descriptions are refused."""

from __future__ import annotations

import pytest

from devstack.batch_emulator.faults import FaultRegistry, FaultSpecError


def test_next_n_calls_of_one_operation_then_gone() -> None:
    registry = FaultRegistry()
    registry.add_http({"operation": "get_pool", "status": 503, "count": 2})
    assert registry.pick("list_nodes") == (0.0, None)
    hits = [registry.pick("get_pool")[1] for _ in range(3)]
    assert [h.status if h else None for h in hits] == [503, 503, None]
    assert hits[0].retry_after == 1  # 429 and 503 carry Retry-After
    assert registry.counters()["injected"] == {"get_pool": 2}
    assert registry.http == []


def test_rate_zero_never_fires_rate_one_always_fires() -> None:
    registry = FaultRegistry(seed=1)
    registry.add_http({"operation": "*", "status": 500, "rate": 0.0})
    assert all(registry.pick("get_pool")[1] is None for _ in range(50))
    registry.clear()
    registry.add_http({"operation": "*", "status": 500, "rate": 1.0})
    assert all(registry.pick("get_pool")[1].status == 500 for _ in range(50))


def test_latency_adds_up_and_500_has_no_retry_after() -> None:
    registry = FaultRegistry()
    registry.add_http({"operation": "list_nodes", "latencyMs": 200})
    registry.add_http({"operation": "*", "latencyMs": 50, "status": 500, "count": 1})
    delay, fault = registry.pick("list_nodes")
    assert delay == pytest.approx(0.25)
    assert fault.status == 500 and fault.retry_after is None


def test_after_faults_are_picked_like_the_others_and_say_so() -> None:
    registry = FaultRegistry()
    registry.add_http({"operation": "create_pool", "status": 500, "after": True, "count": 1})
    registry.add_http({"operation": "delete_node_user", "drop": True, "after": True, "count": 1})
    _, fault = registry.pick("create_pool")
    assert fault.after and fault.status == 500 and fault.retry_after is None
    _, fault = registry.pick("delete_node_user")
    assert fault.after and fault.drop
    assert registry.pick("create_pool") == (0.0, None)
    assert registry.counters()["injected"] == {"create_pool": 1, "delete_node_user": 1}


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"status": 404}, "'status' must be one of 429, 500, 503"),
        ({"operation": "get_pool"}, "needs 'status', 'drop' or 'latencyMs'"),
        ({"status": 503, "count": 0}, "'count' must be an integer >= 1"),
        ({"status": 503, "count": 1, "rate": 0.5}, "either 'count' or 'rate'"),
        ({"status": 503, "rate": 2}, "'rate' must be between 0 and 1"),
        ({"drop": True, "status": 500}, "either 'status' or 'drop'"),
        ({"status": 500, "colour": "red"}, "unknown field(s) colour"),
        ({"status": 503, "after": True}, "'after' the operation is 'drop': true or 'status': 500"),
        ({"latencyMs": 10, "after": True}, "'after' the operation is 'drop': true or 'status': 500"),
        ({"status": 500, "after": "yes"}, "'after' must be true or false"),
    ],
)
def test_bad_http_faults_are_explained(spec, message) -> None:
    with pytest.raises(FaultSpecError) as info:
        FaultRegistry().add_http(spec)
    assert message in str(info.value)


def test_allocation_faults_are_used_once_per_kind_and_match_pool() -> None:
    registry = FaultRegistry()
    registry.add_allocation("resizeError", {"poolId": "other"})
    registry.add_allocation("startTaskFailure", {"nodeIndexes": [1], "exitCode": 3})
    registry.add_allocation("startTaskFailure", {"count": 1})
    taken = registry.take_allocation_faults("mine")
    assert [(f.kind, f.node_indexes) for f in taken] == [("startTaskFailure", [1])]
    assert taken[0].selects(1, 0) and not taken[0].selects(0, 1)
    # A fault without poolId hits whichever pool allocates next.
    quota, failure = registry.take_allocation_faults("OTHER")
    assert (quota.kind, quota.code) == ("resizeError", "AccountCoreQuotaReached")
    assert quota.message == "The specified account has reached VM core quota limit"
    assert (failure.kind, failure.count) == ("startTaskFailure", 1)
    assert registry.take_allocation_faults("mine") == []


@pytest.mark.parametrize(
    "kind, spec, message",
    [
        ("startTaskFailure", {"exitCode": 0}, "'exitCode' must be a non-zero integer"),
        ("startTaskFailure", {"nodeIndexes": [-1]}, "'nodeIndexes' must be a list"),
        ("resizeError", {"code": "SomethingNew"}, "'message' is required"),
        ("unusable", {"afterSeconds": -1}, "'afterSeconds' must be"),
        ("meteor", {}, "unknown fault kind"),
    ],
)
def test_bad_allocation_faults_are_explained(kind, spec, message) -> None:
    with pytest.raises(FaultSpecError) as info:
        FaultRegistry().add_allocation(kind, spec)
    assert message in str(info.value)
