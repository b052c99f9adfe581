"""The supported-image catalog and the accepted VM sizes, loaded from the packaged catalog.json or another
file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

DEFAULT_CATALOG = Path(__file__).with_name("catalog.json")
_IMAGE_KEYS = ("publisher", "offer", "sku")


class CatalogError(ValueError):
    """A catalog file that is missing, not JSON, or has entries without the required fields."""


@dataclass(frozen=True)
class SupportedImage:
    """One `list_supported_images` entry, kept as the JSON the service returns."""

    entry: dict[str, Any]

    @property
    def node_agent_sku_id(self) -> str:
        return self.entry["nodeAgentSKUId"]

    @property
    def os_type(self) -> str:
        return self.entry["osType"]

    @property
    def end_of_life(self) -> datetime | None:
        value = self.entry.get("batchSupportEndOfLife")
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

    def matches(self, image_reference: dict[str, Any]) -> bool:
        """Publisher, offer and sku compare case-insensitively, as the service does."""
        mine = self.entry["imageReference"]
        return all(
            str(mine.get(k, "")).lower() == str(image_reference.get(k, "")).lower() for k in _IMAGE_KEYS
        )


@dataclass(frozen=True)
class Catalog:
    """Images offered by `list_supported_images` and VM sizes (name -> cores) accepted by create_pool."""

    images: tuple[SupportedImage, ...]
    vm_sizes: dict[str, int] = field(default_factory=dict)

    def find_image(self, image_reference: dict[str, Any]) -> SupportedImage | None:
        return next((image for image in self.images if image.matches(image_reference)), None)

    def vm_size_cores(self, vm_size: str) -> int | None:
        return self.vm_sizes.get(vm_size.lower())


def load_catalog(path: Path | None = None) -> Catalog:
    """Load a catalog JSON file ({"images": [...], "vmSizes": [...]}); vmSizes default to the packaged
    ones."""
    source = path or DEFAULT_CATALOG
    try:
        data = json.loads(Path(source).read_text())
    except FileNotFoundError as exc:
        raise CatalogError(f"catalog file not found: {source}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"catalog file {source} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise CatalogError(f"catalog file {source} must be an object with an 'images' list")
    images = tuple(_image(entry, source, i) for i, entry in enumerate(data["images"]))
    sizes = data.get("vmSizes")
    if sizes is None:
        sizes = json.loads(DEFAULT_CATALOG.read_text())["vmSizes"]
    return Catalog(images=images, vm_sizes=_vm_sizes(sizes, source))


def _image(entry: Any, source: Path, index: int) -> SupportedImage:
    where = f"catalog {source}: images[{index}]"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where} must be an object")
    for key in ("nodeAgentSKUId", "imageReference", "osType", "verificationType"):
        if key not in entry:
            raise CatalogError(f"{where} lacks '{key}'")
    reference = entry["imageReference"]
    if not isinstance(reference, dict) or any(not reference.get(k) for k in _IMAGE_KEYS):
        raise CatalogError(f"{where}.imageReference needs publisher, offer and sku")
    if entry["osType"] not in ("linux", "windows"):
        raise CatalogError(f"{where}.osType must be 'linux' or 'windows'")
    if entry["verificationType"] not in ("verified", "unverified"):
        raise CatalogError(f"{where}.verificationType must be 'verified' or 'unverified'")
    eol = entry.get("batchSupportEndOfLife")
    if eol is not None:
        try:
            datetime.fromisoformat(str(eol).replace("Z", "+00:00"))
        except ValueError as exc:
            raise CatalogError(f"{where}.batchSupportEndOfLife must be an ISO 8601 date-time") from exc
    # The service omits what an image does not have: no `capabilities` when there are none, no
    # `batchSupportEndOfLife` when none is announced (the specification's ListSupportedImages example).
    full = {key: value for key, value in entry.items() if value is not None and value != []}
    return SupportedImage(full)


def _vm_sizes(sizes: Any, source: Path) -> dict[str, int]:
    if not isinstance(sizes, list):
        raise CatalogError(f"catalog {source}: vmSizes must be a list")
    result: dict[str, int] = {}
    for i, size in enumerate(sizes):
        if isinstance(size, str):
            result[size.lower()] = 1
        elif isinstance(size, dict) and isinstance(size.get("name"), str):
            result[size["name"].lower()] = int(size.get("cores", 1))
        else:
            raise CatalogError(f"catalog {source}: vmSizes[{i}] must be a name or {{'name', 'cores'}}")
    return result
