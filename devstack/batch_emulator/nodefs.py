"""A node's directory tree under --data-dir, laid out like a Batch node's (startup, shared, per-user homes), with
a `bin/hostname` that prints the node id, and the environment Batch gives processes on the node."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

HOSTNAME_SCRIPT = """#!/bin/sh
# Batch emulator node: `hostname` answers with the node id (`hostname -i`/`-I` with the node's IP address).
case "$1" in
  -i|-I|--ip-address|--all-ip-addresses) echo "{ip}" ;;
  *) echo "{node_id}" ;;
esac
"""
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class NodeLayout:
    """Paths of one node: root/{startup/wd, shared, bin, home/<user>}."""

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

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def prepare(self, node_id: str, ip_address: str) -> None:
        """Create the tree and the hostname script (idempotent)."""
        for path in (self.startup_wd, self.shared, self.bin, self.root / "home"):
            path.mkdir(parents=True, exist_ok=True)
        script = self.bin / "hostname"
        if not script.exists():
            script.write_text(HOSTNAME_SCRIPT.format(node_id=node_id, ip=ip_address))
            script.chmod(0o755)

    def prepare_home(self, user: str) -> Path:
        home = self.home(user)
        home.mkdir(parents=True, exist_ok=True)
        return home


def pool_dir(data_dir: Path, pool_id: str, pool_seq: int) -> Path:
    return data_dir / "pools" / f"{pool_id}.{pool_seq}"


def node_environment(
    layout: NodeLayout,
    *,
    account: str,
    account_url: str,
    pool_id: str,
    node_id: str,
    is_dedicated: bool,
) -> dict[str, str]:
    """The AZ_BATCH_* variables and basics (PATH with the node's bin first) every process on the node sees."""
    return {
        "PATH": f"{layout.bin}:{os.environ.get('PATH', SYSTEM_PATH)}",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOSTNAME": node_id,
        "AZ_BATCH_ACCOUNT_NAME": account,
        "AZ_BATCH_ACCOUNT_URL": account_url,
        "AZ_BATCH_POOL_ID": pool_id,
        "AZ_BATCH_NODE_ID": node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true" if is_dedicated else "false",
        "AZ_BATCH_NODE_ROOT_DIR": str(layout.root),
        "AZ_BATCH_NODE_SHARED_DIR": str(layout.shared),
        "AZ_BATCH_NODE_STARTUP_DIR": str(layout.startup),
    }


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
