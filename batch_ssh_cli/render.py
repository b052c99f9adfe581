"""What a person reads: aligned tables, the progress line while a request runs, and error messages."""

from __future__ import annotations

import sys
from typing import Any, TextIO

BAR_WIDTH = 20


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    cells = [[str("" if c is None else c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def connection_rows(pool_id: str, nodes: list[dict]) -> list[list[Any]]:
    return [
        [f"{pool_id}-{i}", r["nodeId"], r.get("nodeState"), r["ip"], r["port"], r["user"], r.get("expiresAt")]
        for i, r in enumerate(nodes)
    ]


CONNECTION_HEADERS = ["alias", "node", "state", "ip", "port", "user", "expires"]


def progress_text(view: dict) -> str:
    """`phase  nodes 2/3 idle  users 2/3 granted` from GET /api/pools/{poolId}."""
    progress = view.get("progress") or {}
    parts = [str(view.get("phase") or "accepted")]
    if "nodesTotal" in progress:
        parts.append(f"nodes {progress.get('nodesIdle', 0)}/{progress['nodesTotal']} idle")
        if progress.get("nodesFailed"):
            parts.append(f"{progress['nodesFailed']} failed")
    if "usersTotal" in progress:
        parts.append(f"users {progress.get('usersGranted', 0)}/{progress['usersTotal']} granted")
    return "  ".join(parts)


def progress_fraction(view: dict) -> float:
    progress = view.get("progress") or {}
    total = (progress.get("nodesTotal") or 0) + (progress.get("usersTotal") or 0)
    done = (progress.get("nodesIdle") or 0) + (progress.get("usersGranted") or 0)
    return min(1.0, done / total) if total else 0.0


class ProgressDisplay:
    """On a terminal, one line redrawn in place with a bar; elsewhere (logs, pipes), a line per change."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.last = ""

    def show(self, view: dict) -> None:
        text = progress_text(view)
        if self.live:
            filled = round(progress_fraction(view) * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r\x1b[2K[{bar}] {text}")
            self.stream.flush()
        elif text != self.last:
            self.stream.write(f"{text}\n")
            self.stream.flush()
        self.last = text

    def close(self) -> None:
        if self.live and self.last:
            self.stream.write("\n")
            self.stream.flush()
