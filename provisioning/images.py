"""Image choice policy: resolve a request's image against the service's supported-image list.

Entries are the service's JSON (`nodeAgentSKUId`, `imageReference`, `osType`, `verificationType`,
`capabilities`, `batchSupportEndOfLife`). A selector picks the newest verified Linux entry that matches and is
in support; an explicit reference must be listed, verified (unless allowed otherwise) and in support.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from provisioning.durations import parse_timestamp

_AGENT = re.compile(r"^batch\.node\.(?P<family>[a-z0-9_-]+)\s+(?P<version>[\w.]+)$", re.IGNORECASE)


class ImageSelectionError(ValueError):
    """No acceptable image; the message lists what the service offers."""

    code = "ImageNotAvailable"


@dataclass(frozen=True)
class CatalogEntry:
    agent_sku: str
    family: str
    version: str
    publisher: str
    offer: str
    sku: str
    image_version: str
    os_type: str
    verified: bool
    capabilities: tuple[str, ...]
    end_of_life: datetime | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> CatalogEntry:
        ref = entry.get("imageReference") or {}
        agent = entry.get("nodeAgentSKUId") or ""
        match = _AGENT.match(agent.strip())
        eol = entry.get("batchSupportEndOfLife")
        return cls(
            agent_sku=agent,
            family=(match["family"].lower() if match else ""),
            version=(match["version"] if match else ""),
            publisher=str(ref.get("publisher") or ""),
            offer=str(ref.get("offer") or ""),
            sku=str(ref.get("sku") or ""),
            image_version=str(ref.get("version") or "latest"),
            os_type=str(entry.get("osType") or "").lower(),
            verified=str(entry.get("verificationType") or "").lower() == "verified",
            capabilities=tuple(entry.get("capabilities") or ()),
            end_of_life=parse_timestamp(eol) if isinstance(eol, str) else eol,
            raw=entry,
        )

    def in_support(self, now: datetime) -> bool:
        return self.end_of_life is None or self.end_of_life > now

    def describe(self) -> str:
        parts = [f"{self.publisher}/{self.offer}/{self.sku}", f"agent {self.agent_sku}"]
        if not self.verified:
            parts.append("unverified")
        if self.end_of_life:
            parts.append(f"end of life {self.end_of_life.date().isoformat()}")
        return f"{self.family} {self.version} ({', '.join(parts)})"

    def choice(self) -> dict[str, Any]:
        """The chosen image as the orchestration carries it."""
        return {
            "imageReference": {
                "publisher": self.publisher,
                "offer": self.offer,
                "sku": self.sku,
                "version": self.image_version,
            },
            "nodeAgentSkuId": self.agent_sku,
            "verified": self.verified,
            "endOfLife": self.end_of_life.isoformat() if self.end_of_life else None,
            "description": self.describe(),
        }


def _version_key(text: str) -> tuple:
    return (
        tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[._-]", text))
        if text != "latest"
        else (10**9,)
    )


def _newest_first(entries: list[CatalogEntry]) -> list[CatalogEntry]:
    return sorted(
        entries, key=lambda e: (_version_key(e.version), _version_key(e.image_version)), reverse=True
    )


def _available(entries: list[CatalogEntry], now: datetime) -> str:
    usable = [e for e in _newest_first(entries) if e.os_type == "linux" and e.verified and e.in_support(now)]
    if not usable:
        return "the service lists no verified Linux image in support"
    return "verified Linux images in support: " + "; ".join(e.describe() for e in usable)


def _matches_selector(entry: CatalogEntry, selector: dict[str, Any]) -> bool:
    os_name = selector["os"].lower()
    if entry.os_type != "linux":
        return False
    if os_name not in (entry.family, entry.publisher.lower()) and os_name not in entry.offer.lower():
        return False
    version = selector.get("version")
    if version and not (entry.version == version or entry.version.startswith(version + ".")):
        return False
    return set(selector.get("capabilities") or ()) <= set(entry.capabilities)


def _selector_text(selector: dict[str, Any]) -> str:
    text = selector["os"] + (f" {selector['version']}" if selector.get("version") else "")
    if selector.get("capabilities"):
        text += " with capabilities " + ", ".join(selector["capabilities"])
    return text


def select_image(catalog: list[dict[str, Any]], image: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Resolve `image` (a selector or an explicit reference) against `catalog`; raise ImageSelectionError."""
    entries = [CatalogEntry.from_json(e) for e in catalog]
    if "publisher" in image:
        return _select_reference(entries, image, now)
    matching = [e for e in entries if _matches_selector(e, image)]
    good = [e for e in matching if e.verified and e.in_support(now)]
    if good:
        return _newest_first(good)[0].choice()
    wanted = _selector_text(image)
    if matching and all(not e.in_support(now) for e in matching):
        detail = "; ".join(e.describe() for e in matching)
        raise ImageSelectionError(
            f"every image matching {wanted} is past its end of life ({detail}); {_available(entries, now)}"
        )
    if matching:
        raise ImageSelectionError(
            f"the images matching {wanted} are unverified; name one explicitly with allowUnverified: true, "
            f"or choose another: {_available(entries, now)}"
        )
    raise ImageSelectionError(f"no supported image matches {wanted}; {_available(entries, now)}")


def _select_reference(entries: list[CatalogEntry], ref: dict[str, Any], now: datetime) -> dict[str, Any]:
    name = f"{ref['publisher']}/{ref['offer']}/{ref['sku']}"
    wanted_version = ref.get("version")
    listed = [
        e
        for e in entries
        if (e.publisher.lower(), e.offer.lower(), e.sku.lower())
        == (ref["publisher"].lower(), ref["offer"].lower(), ref["sku"].lower())
        and (not wanted_version or e.image_version in ("latest", wanted_version))
    ]
    if not listed:
        raise ImageSelectionError(
            f"image {name} is not in the service's supported image list; {_available(entries, now)}"
        )
    entry = _newest_first(listed)[0]
    if entry.os_type != "linux":
        raise ImageSelectionError(
            f"image {name} is a {entry.os_type or 'non-Linux'} image; this app provisions Linux "
            f"nodes; {_available(entries, now)}"
        )
    if not entry.in_support(now):
        raise ImageSelectionError(
            f"image {name} reached its end of life on {entry.end_of_life.date().isoformat()} "
            "and cannot be used; "
            f"{_available(entries, now)}"
        )
    if not entry.verified and not ref.get("allowUnverified"):
        raise ImageSelectionError(
            f"image {name} is unverified: set image.allowUnverified to true to use it anyway"
        )
    choice = entry.choice()
    if wanted_version:
        choice["imageReference"]["version"] = wanted_version
    return choice
