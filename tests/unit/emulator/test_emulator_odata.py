"""OData $filter / $select as Batch list operations use them."""

from __future__ import annotations

import re

import pytest

from devstack.batch_emulator.odata import ODataError, apply_select, parse_filter, parse_select

IMAGES = [
    {
        "nodeAgentSKUId": "batch.node.ubuntu 24.04",
        "osType": "linux",
        "verificationType": "verified",
        "imageReference": {"publisher": "canonical", "sku": "server"},
    },
    {
        "nodeAgentSKUId": "batch.node.el 9",
        "osType": "linux",
        "verificationType": "unverified",
        "imageReference": {"publisher": "almalinux", "sku": "9-gen2"},
    },
    {
        "nodeAgentSKUId": "batch.node.windows amd64",
        "osType": "windows",
        "verificationType": "verified",
        "imageReference": {"publisher": "microsoftwindowsserver", "sku": "2022-datacenter"},
    },
]


def select(expr: str, items: list[dict] = IMAGES) -> list[str]:
    predicate = parse_filter(expr)
    return [item["nodeAgentSKUId"] for item in items if predicate(item)]


def test_and_of_two_equalities() -> None:
    assert select("verificationType eq 'verified' and osType eq 'linux'") == ["batch.node.ubuntu 24.04"]


def test_or_not_and_parentheses() -> None:
    assert select("osType eq 'windows' or verificationType ne 'verified'") == [
        "batch.node.el 9",
        "batch.node.windows amd64",
    ]
    assert select("not (osType eq 'linux')") == ["batch.node.windows amd64"]
    assert select("(osType eq 'linux' or osType eq 'windows') and verificationType eq 'unverified'") == [
        "batch.node.el 9"
    ]


def test_keywords_are_case_insensitive_values_are_not() -> None:
    assert select("osType EQ 'linux' AND verificationType Eq 'verified'") == ["batch.node.ubuntu 24.04"]
    assert select("osType eq 'Linux'") == []


def test_property_paths_and_functions() -> None:
    assert select("imageReference/publisher eq 'canonical'") == ["batch.node.ubuntu 24.04"]
    assert select("startswith(nodeAgentSKUId, 'batch.node.ubuntu')") == ["batch.node.ubuntu 24.04"]
    assert select("endswith(nodeAgentSKUId,'amd64')") == ["batch.node.windows amd64"]


def test_quotes_numbers_booleans_and_datetimes() -> None:
    items = [
        {"id": "it's", "n": 3, "flag": True, "t": "2025-01-02T00:00:00.0000000Z"},
        {"id": "x", "n": 10, "flag": False, "t": "2026-01-02T00:00:00.0000000Z"},
    ]
    pick = lambda expr: [i["id"] for i in items if parse_filter(expr)(i)]  # noqa: E731
    assert pick("id eq 'it''s'") == ["it's"]
    assert pick("n gt 5") == ["x"]
    assert pick("n le 3 and flag eq true") == ["it's"]
    assert pick("t lt datetime'2025-06-01T00:00:00Z'") == ["it's"]
    assert pick("missing eq null") == ["it's", "x"]


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("state eq", "end of the expression"),
        ("state = 'idle'", "unexpected character"),
        ("state eq 'idle' and", "end of the expression"),
        ("state is 'idle'", "comparison operator"),
        ("(state eq 'idle'", "expected ')'"),
        ("", "empty"),
        ("bogus eq 'x'", "unknown property 'bogus'"),
    ],
)
def test_invalid_filters_explain_themselves(expr: str, fragment: str) -> None:
    with pytest.raises(ODataError, match=re.escape(fragment)):
        parse_filter(expr, known=("state", "id"))


def test_select_keeps_named_properties_and_rejects_unknown() -> None:
    names = parse_select("id, state", known=("id", "state", "ipAddress"))
    assert apply_select({"id": "n1", "state": "idle", "ipAddress": "10.0.0.4"}, names) == {
        "id": "n1",
        "state": "idle",
    }
    with pytest.raises(ODataError, match="unknown property 'bogus'"):
        parse_select("id,bogus", known=("id",))
