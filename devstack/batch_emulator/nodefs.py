"""A node's directory tree under --data-dir, laid out like a Batch node's (startup, shared, per-user homes)
and created lazily (metadata operations are the slow part of a 1,000-node pool); a shared `bin/hostname` that
prints the node id; and the environment Batch gives processes on the node."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

# One script for all nodes: their processes carry AZ_BATCH_NODE_ID and BATCH_EMULATOR_NODE_IP.
HOSTNAME_SCRIPT = """#!/bin/sh
# Batch emulator node: `hostname` prints the node id (`hostname -i` / `-I`: the node's IP address).
case "$1" in
  -i|-I|--ip-address|--all-ip-addresses) echo "$BATCH_EMULATOR_NODE_IP" ;;
  *) echo "$AZ_BATCH_NODE_ID" ;;
esac
"""
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class NodeLayout:
    """Paths of one node: root/{startup/wd, shared, home/<user>}."""

    root: Path

    @classmethod
    def for_node(cls, data_dir: Path, pool_id: str, pool_seq: int, node_id: str) -> NodeLayout:
        return cls(pool_dir(data_dir, pool_id, pool_seq) / "nodes" / node_id)

    @property
    def startup(self) -> Path:
        return self.root / "startup"

    @property
    def startup_wd(self) -> Path:
        return self.startup / "wd"

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def prepare_start_task(self) -> None:
        """startup/wd and shared, which a start task needs (idempotent)."""
        os.makedirs(self.startup_wd, exist_ok=True)
        os.makedirs(self.shared, exist_ok=True)

    def prepare_home(self, user: str) -> Path:
        """The user's home (and the node's shared dir), created on first login."""
        home = self.home(user)
        if not home.is_dir():
            os.makedirs(home, exist_ok=True)
            os.makedirs(self.shared, exist_ok=True)
        return home


def pool_dir(data_dir: Path, pool_id: str, pool_seq: int) -> Path:
    return data_dir / "pools" / f"{pool_id}.{pool_seq}"


def install_bin(data_dir: Path) -> Path:
    """The directory put first on every node process's PATH, with the `hostname` script."""
    bin_dir = data_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "hostname"
    script.write_text(HOSTNAME_SCRIPT)
    script.chmod(0o755)
    return bin_dir


def node_environment(
    layout: NodeLayout,
    *,
    bin_dir: Path,
    account: str,
    account_url: str,
    pool_id: str,
    node_id: str,
    ip_address: str,
    is_dedicated: bool,
) -> dict[str, str]:
    """The AZ_BATCH_* variables and basics (PATH with the emulator's bin first) every process on the node
    sees."""
    return {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', SYSTEM_PATH)}",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOSTNAME": node_id,
        "AZ_BATCH_ACCOUNT_NAME": account,
        "AZ_BATCH_ACCOUNT_URL": account_url,
        "AZ_BATCH_POOL_ID": pool_id,
        "AZ_BATCH_NODE_ID": node_id,
        "BATCH_EMULATOR_NODE_IP": ip_address,
        "AZ_BATCH_NODE_IS_DEDICATED": "true" if is_dedicated else "false",
        "AZ_BATCH_NODE_ROOT_DIR": str(layout.root),
        "AZ_BATCH_NODE_SHARED_DIR": str(layout.shared),
        "AZ_BATCH_NODE_STARTUP_DIR": str(layout.startup),
    }


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
