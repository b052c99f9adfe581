"""Image selection against the emulator's catalog (a copy of today's service list)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from provisioning.images import ImageSelectionError, select_image

CATALOG = json.loads(
    (Path(__file__).resolve().parents[3] / "devstack" / "batch_emulator" / "catalog.json").read_text()
)["images"]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_selector_picks_the_newest_verified_image_in_support():
    choice = select_image(CATALOG, {"os": "ubuntu"}, NOW)
    assert choice["nodeAgentSkuId"] == "batch.node.ubuntu 24.04"
    assert choice["imageReference"] == {
        "publisher": "canonical",
        "offer": "ubuntu-24_04-lts",
        "sku": "server",
        "version": "latest",
    }


def test_a_selector_with_a_version_picks_that_version():
    choice = select_image(CATALOG, {"os": "ubuntu", "version": "22.04"}, NOW)
    assert choice["nodeAgentSkuId"] == "batch.node.ubuntu 22.04"
    assert choice["imageReference"]["offer"] == "0001-com-ubuntu-server-jammy"


def test_an_image_past_end_of_life_is_never_chosen():
    later = datetime(2027, 7, 1, tzinfo=UTC)  # 22.04 ended 2027-06-30
    with pytest.raises(ImageSelectionError) as err:
        select_image(CATALOG, {"os": "ubuntu", "version": "22.04"}, later)
    assert "past its end of life" in str(err.value)
    assert "ubuntu 24.04" in str(err.value)  # the error lists what exists


def test_a_retired_version_is_refused_with_the_list_of_what_exists():
    with pytest.raises(ImageSelectionError) as err:
        select_image(CATALOG, {"os": "ubuntu", "version": "20.04"}, NOW)
    message = str(err.value)
    assert "ubuntu 20.04" in message and "past its end of life" in message
    assert "ubuntu 24.04 (canonical/ubuntu-24_04-lts/server, agent batch.node.ubuntu 24.04)" in message
    assert "ubuntu 22.04" in message


def test_no_match_lists_the_verified_linux_images():
    with pytest.raises(ImageSelectionError) as err:
        select_image(CATALOG, {"os": "ubuntu", "version": "26.04"}, NOW)
    message = str(err.value)
    assert message.startswith("no supported image matches ubuntu 26.04;")
    assert "ubuntu 24.04" in message and "ubuntu 22.04" in message
    assert "windows" not in message.lower() and "20.04" not in message and "almalinux" not in message


def test_windows_is_not_a_linux_image():
    with pytest.raises(ImageSelectionError, match="no supported image matches windows"):
        select_image(CATALOG, {"os": "windows"}, NOW)


def test_a_selector_never_picks_an_unverified_image():
    with pytest.raises(ImageSelectionError, match="unverified; name one explicitly with allowUnverified"):
        select_image(CATALOG, {"os": "almalinux"}, NOW)


def test_a_selector_can_require_capabilities():
    catalog = CATALOG + [
        {
            **CATALOG[1],
            "capabilities": ["DockerCompatible"],
            "imageReference": {**CATALOG[1]["imageReference"], "offer": "docker-jammy"},
        }
    ]
    choice = select_image(catalog, {"os": "ubuntu", "capabilities": ["DockerCompatible"]}, NOW)
    assert choice["imageReference"]["offer"] == "docker-jammy"
    with pytest.raises(ImageSelectionError, match="with capabilities GPU"):
        select_image(catalog, {"os": "ubuntu", "capabilities": ["GPU"]}, NOW)


def test_an_explicit_reference_must_be_listed():
    with pytest.raises(ImageSelectionError) as err:
        select_image(CATALOG, {"publisher": "canonical", "offer": "ubuntuserver", "sku": "18.04-lts"}, NOW)
    assert "canonical/ubuntuserver/18.04-lts is not in the service's supported image list" in str(err.value)
    assert "ubuntu 24.04" in str(err.value)


def test_an_explicit_reference_is_matched_case_insensitively():
    choice = select_image(
        CATALOG, {"publisher": "Canonical", "offer": "Ubuntu-24_04-LTS", "sku": "server"}, NOW
    )
    assert choice["nodeAgentSkuId"] == "batch.node.ubuntu 24.04"


def test_an_unverified_reference_needs_the_explicit_flag():
    ref = {"publisher": "almalinux", "offer": "almalinux-x86_64", "sku": "9-gen2"}
    with pytest.raises(ImageSelectionError, match="is unverified: set image.allowUnverified to true"):
        select_image(CATALOG, ref, NOW)
    assert select_image(CATALOG, {**ref, "allowUnverified": True}, NOW)["nodeAgentSkuId"] == "batch.node.el 9"


def test_a_reference_past_end_of_life_is_refused_even_when_allowed():
    ref = {
        "publisher": "canonical",
        "offer": "0001-com-ubuntu-server-focal",
        "sku": "20_04-lts",
        "allowUnverified": True,
    }
    with pytest.raises(ImageSelectionError, match="reached its end of life on 2025-04-23"):
        select_image(CATALOG, ref, NOW)


def test_a_windows_reference_is_refused():
    ref = {"publisher": "microsoftwindowsserver", "offer": "windowsserver", "sku": "2022-datacenter"}
    with pytest.raises(ImageSelectionError, match="is a windows image; this app provisions Linux"):
        select_image(CATALOG, ref, NOW)


def test_an_empty_catalog_says_so():
    with pytest.raises(ImageSelectionError, match="lists no verified Linux image in support"):
        select_image([], {"os": "ubuntu"}, NOW)
