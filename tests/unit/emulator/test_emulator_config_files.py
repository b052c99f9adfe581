"""Timing profiles and catalog files: named profiles, JSON overrides, and clear refusals of bad files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from devstack.batch_emulator.catalog import CatalogError, load_catalog
from devstack.batch_emulator.timing import PROFILES, TimingProfile, load_timing


def test_named_profiles_and_json_override(tmp_path: Path) -> None:
    assert load_timing("fast") is PROFILES["fast"]
    assert load_timing("realistic").starting == 60.0
    (tmp_path / "t.json").write_text(json.dumps({"allocation": 3600}))
    profile = load_timing(str(tmp_path / "t.json"))
    assert (profile.allocation, profile.creating) == (3600, PROFILES["fast"].creating)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"allocaton": 1}', "unknown field(s) allocaton"),
        ('{"starting": -1}', "'starting' must be a number of seconds >= 0"),
        ("[1, 2]", "must hold a JSON object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_bad_timing_files_are_explained(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "t.json").write_text(content)
    with pytest.raises(ValueError) as info:
        load_timing(str(tmp_path / "t.json"))
    assert message in str(info.value)
    with pytest.raises(ValueError, match="fast, realistic"):
        load_timing("glacial")


def test_jitter_spreads_delays_within_bounds() -> None:
    profile = TimingProfile(starting=10.0, jitter=0.25)
    delays = [profile.delay("starting", random.Random(seed)) for seed in range(200)]
    assert all(7.5 <= d <= 12.5 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100


def test_packaged_catalog_mirrors_the_service() -> None:
    catalog = load_catalog()
    by_agent = {i.node_agent_sku_id: i for i in catalog.images}
    assert by_agent["batch.node.ubuntu 22.04"].end_of_life.date().isoformat() == "2027-06-30"
    assert by_agent["batch.node.ubuntu 20.04"].end_of_life.date().isoformat() == "2025-04-23"
    assert {i.entry["verificationType"] for i in catalog.images} == {"verified", "unverified"}
    assert {i.os_type for i in catalog.images} == {"linux", "windows"}
    assert catalog.vm_size_cores("Standard_D2S_V3") == 2
    assert catalog.vm_size_cores("standard_nope") is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"images": [{"osType": "linux"}]}, "lacks 'nodeAgentSKUId'"),
        (
            {
                "images": [
                    {
                        "nodeAgentSKUId": "a",
                        "imageReference": {"publisher": "p"},
                        "osType": "linux",
                        "verificationType": "verified",
                    }
                ]
            },
            "needs publisher, offer and sku",
        ),
        (
            {
                "images": [
                    {
                        "nodeAgentSKUId": "a",
                        "imageReference": {"publisher": "p", "offer": "o", "sku": "s"},
                        "osType": "beos",
                        "verificationType": "verified",
                    }
                ]
            },
            "osType must be",
        ),
        ({"vmSizes": []}, "'images' list"),
    ],
)
def test_bad_catalog_files_are_explained(tmp_path: Path, data: dict, message: str) -> None:
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path / "c.json")
    assert message in str(info.value)
