"""The settings a provisioning run needs, frozen into its input at start (orchestrators never read env)."""

from __future__ import annotations

from typing import Any

from provisioning.settings import Settings


def status_url(base_url: str | None, pool_id: str) -> str:
    """Where anyone can ask about a pool (GET, function key needed); relative when the base URL is unknown."""
    return f"{(base_url or '').rstrip('/')}/api/pools/{pool_id}"


def run_options(settings: Settings, base_url: str | None, pool_id: str) -> dict[str, Any]:
    return {
        "deadlineSeconds": settings.provision_deadline.total_seconds(),
        "pollFirstSeconds": settings.idle_poll_first.total_seconds(),
        "pollMaxSeconds": settings.idle_poll_max.total_seconds(),
        "deletePoolOnFailure": settings.delete_pool_on_failure,
        "statusUrl": status_url(base_url or settings.app_base_url, pool_id),
    }
