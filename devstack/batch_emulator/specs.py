"""Request bodies (pool create, resize, remove nodes, node user) validated into typed specs with the service's
rules; every rejection names the property (JSON path) and the rule it broke."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncssh
import isodate

from devstack.batch_emulator import exceptions as errors
from devstack.batch_emulator.catalog import Catalog, SupportedImage

POOL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
NAT_POOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,76}[A-Za-z0-9_]$|^[A-Za-z0-9_]$")
RESERVED_USER_NAMES = frozenset({"root", "daemon", "bin", "sys", "nobody", "_azbatch", "azureuser"})
RESERVED_BACKEND_PORTS = frozenset({29876, 29877})
# Per-pool node limit: a setting (--max-nodes-per-pool). The service documents fixed pool size limits only for
# pools with inter-node communication (100 nodes in Batch-service allocation mode) and pools from managed
# images (2,000 dedicated / 1,000 spot); otherwise the account's core quota bounds a pool.
MAX_NODES_PER_POOL = 2000
MAX_INTER_NODE_POOL_NODES = 100
MIN_RESIZE_TIMEOUT = timedelta(minutes=5)
DEFAULT_RESIZE_TIMEOUT = timedelta(minutes=15)
DEFAULT_USER_LIFETIME = timedelta(days=1)
SSH_KEY_PREFIXES = ("ssh-", "ecdsa-sha2-", "sk-")


# --- generic field readers --------------------------------------------------------------------


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.invalid_property(path, value, "must be a JSON object")
    return value


def _require(body: dict[str, Any], key: str, path: str) -> Any:
    if body.get(key) is None:
        raise errors.missing_property(path)
    return body[key]


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise errors.invalid_property(path, value, "must be a string")
    return value


def _int(value: Any, path: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid_property(path, value, "must be an integer")
    if low is not None and value < low:
        raise errors.invalid_property(path, value, f"must be at least {low}")
    if high is not None and value > high:
        raise errors.invalid_property(path, value, f"must be at most {high}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise errors.invalid_property(path, value, "must be true or false")
    return value


def _duration(value: Any, path: str) -> timedelta:
    text = _str(value, path)
    try:
        parsed = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise errors.invalid_property(path, value, "must be an ISO 8601 duration such as PT15M") from exc
    if not isinstance(parsed, timedelta):
        raise errors.invalid_property(path, value, "must be a duration in days, hours, minutes or seconds")
    return parsed


def _datetime(value: Any, path: str) -> datetime:
    text = _str(value, path)
    try:
        parsed = isodate.parse_datetime(text)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise errors.invalid_property(
            path, value, "must be an ISO 8601 date-time such as 2030-01-02T03:04:05Z"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- pool -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NsgRule:
    """A network security group rule on an inbound NAT pool (lower priority number wins)."""

    priority: int
    access: str  # allow | deny
    source_address_prefix: str
    source_port_ranges: tuple[str, ...] = ("*",)

    def matches(self, address: str, port: int) -> bool:
        return _address_matches(self.source_address_prefix, address) and _port_matches(
            self.source_port_ranges, port
        )


@dataclass(frozen=True)
class NatPoolSpec:
    """An inbound NAT pool: frontend ports start..end on the pool's public address map to `backend_port`."""

    name: str
    protocol: str
    backend_port: int
    frontend_port_range_start: int
    frontend_port_range_end: int
    rules: tuple[NsgRule, ...] = ()

    @property
    def size(self) -> int:
        return self.frontend_port_range_end - self.frontend_port_range_start + 1

    def allows(self, address: str, port: int) -> bool:
        """No rules: open to all. Rules: the first match by priority decides; no match is denied (NSG
        default)."""
        if not self.rules:
            return True
        for rule in sorted(self.rules, key=lambda r: r.priority):
            if rule.matches(address, port):
                return rule.access == "allow"
        return False


@dataclass(frozen=True)
class StartTaskSpec:
    command_line: str
    environment: tuple[tuple[str, str], ...]
    wait_for_success: bool
    max_task_retry_count: int
    body: dict[str, Any]


@dataclass(frozen=True)
class PoolSpec:
    """A validated create-pool request; `body` keeps the JSON for echoing back in get_pool."""

    id: str
    vm_size: str
    image: SupportedImage
    target_dedicated_nodes: int
    target_low_priority_nodes: int
    resize_timeout: timedelta
    start_task: StartTaskSpec | None
    nat_pools: tuple[NatPoolSpec, ...]
    body: dict[str, Any] = field(repr=False)

    @property
    def ssh_nat_pool(self) -> NatPoolSpec | None:
        return next((p for p in self.nat_pools if p.backend_port == 22 and p.protocol == "tcp"), None)


def parse_pool(
    body: Any, catalog: Catalog, now: datetime, *, max_nodes: int = MAX_NODES_PER_POOL
) -> PoolSpec:
    """Validate a create_pool body against the service's rules and the catalog."""
    body = _obj(body, "pool")
    pool_id = _str(_require(body, "id", "id"), "id")
    if not POOL_ID.match(pool_id):
        raise errors.invalid_property(
            "id", pool_id, "must be 1-64 characters: letters, digits, hyphens and underscores"
        )
    vm_size = _str(_require(body, "vmSize", "vmSize"), "vmSize")
    if catalog.vm_size_cores(vm_size) is None:
        raise errors.invalid_property(
            "vmSize", vm_size, f"is not a supported VM size; supported: {', '.join(sorted(catalog.vm_sizes))}"
        )
    if body.get("cloudServiceConfiguration") is not None:
        raise errors.invalid_property(
            "cloudServiceConfiguration",
            "",
            "Cloud Services pools are retired; use virtualMachineConfiguration",
        )
    image = _parse_vm_configuration(
        _require(body, "virtualMachineConfiguration", "virtualMachineConfiguration"), catalog, now
    )
    if body.get("enableAutoScale"):
        raise errors.invalid_property("enableAutoScale", True, "autoscale is not supported by the emulator")
    inter_node = body.get("enableInterNodeCommunication")
    if inter_node is not None and _bool(inter_node, "enableInterNodeCommunication"):
        max_nodes = min(max_nodes, MAX_INTER_NODE_POOL_NODES)
    dedicated = _int(body.get("targetDedicatedNodes", 0), "targetDedicatedNodes", 0, max_nodes)
    low = _int(body.get("targetLowPriorityNodes", 0), "targetLowPriorityNodes", 0, max_nodes)
    if dedicated + low > max_nodes:
        raise errors.invalid_property(
            "targetLowPriorityNodes", low, f"a pool may have at most {max_nodes} nodes in all"
        )
    resize_timeout = parse_resize_timeout(body.get("resizeTimeout"), "resizeTimeout")
    start_task = _parse_start_task(body["startTask"]) if body.get("startTask") is not None else None
    nat_pools = _parse_network(body.get("networkConfiguration"))
    _check_fits(dedicated + low, nat_pools, "targetDedicatedNodes")
    if body.get("metadata") is not None:
        _parse_metadata(body["metadata"])
    if body.get("displayName") is not None:
        _str(body["displayName"], "displayName")
    return PoolSpec(
        id=pool_id,
        vm_size=vm_size.lower(),
        image=image,
        target_dedicated_nodes=dedicated,
        target_low_priority_nodes=low,
        resize_timeout=resize_timeout,
        start_task=start_task,
        nat_pools=nat_pools,
        body=body,
    )


def parse_resize_timeout(value: Any, path: str) -> timedelta:
    if value is None:
        return DEFAULT_RESIZE_TIMEOUT
    timeout = _duration(value, path)
    if timeout < MIN_RESIZE_TIMEOUT:
        raise errors.invalid_property(path, value, "must be at least 5 minutes (PT5M)")
    return timeout


def _parse_vm_configuration(value: Any, catalog: Catalog, now: datetime) -> SupportedImage:
    base = "virtualMachineConfiguration"
    config = _obj(value, base)
    reference = _obj(_require(config, "imageReference", f"{base}.imageReference"), f"{base}.imageReference")
    for key in ("publisher", "offer", "sku"):
        _str(_require(reference, key, f"{base}.imageReference.{key}"), f"{base}.imageReference.{key}")
    sku_id = _str(_require(config, "nodeAgentSKUId", f"{base}.nodeAgentSKUId"), f"{base}.nodeAgentSKUId")
    image = catalog.find_image(reference)
    described = "/".join(str(reference.get(k)) for k in ("publisher", "offer", "sku"))
    if image is None:
        raise errors.invalid_property(
            f"{base}.imageReference",
            described,
            "the image is not supported by Azure Batch (not in list_supported_images)",
        )
    if image.node_agent_sku_id.lower() != sku_id.lower():
        raise errors.invalid_property(
            f"{base}.nodeAgentSKUId",
            sku_id,
            f"does not match the image; list_supported_images gives '{image.node_agent_sku_id}' "
            f"for {described}",
        )
    if image.end_of_life is not None and image.end_of_life <= now:
        raise errors.invalid_property(
            f"{base}.imageReference",
            described,
            f"Batch support for this image ended on {image.end_of_life.date().isoformat()}",
        )
    if image.os_type != "linux":
        raise errors.invalid_property(
            f"{base}.imageReference", described, "the emulator provisions Linux nodes only"
        )
    return image


def _parse_start_task(value: Any) -> StartTaskSpec:
    task = _obj(value, "startTask")
    command = _str(_require(task, "commandLine", "startTask.commandLine"), "startTask.commandLine")
    if not command.strip():
        raise errors.invalid_property("startTask.commandLine", command, "must not be empty")
    env: list[tuple[str, str]] = []
    settings = task.get("environmentSettings") or []
    if not isinstance(settings, list):
        raise errors.invalid_property("startTask.environmentSettings", settings, "must be a list")
    for i, setting in enumerate(settings):
        path = f"startTask.environmentSettings[{i}]"
        setting = _obj(setting, path)
        name = _str(_require(setting, "name", f"{path}.name"), f"{path}.name")
        value_ = setting.get("value")
        env.append((name, "" if value_ is None else _str(value_, f"{path}.value")))
    wait = _bool(task.get("waitForSuccess", True), "startTask.waitForSuccess")
    retries = _int(task.get("maxTaskRetryCount", 0), "startTask.maxTaskRetryCount", -1, 100)
    return StartTaskSpec(command, tuple(env), wait, retries, task)


def _parse_network(value: Any) -> tuple[NatPoolSpec, ...]:
    if value is None:
        return ()
    network = _obj(value, "networkConfiguration")
    endpoint = network.get("endpointConfiguration")
    if endpoint is None:
        return ()
    base = "networkConfiguration.endpointConfiguration"
    endpoint = _obj(endpoint, base)
    pools = _require(endpoint, "inboundNATPools", f"{base}.inboundNATPools")
    if not isinstance(pools, list):
        raise errors.invalid_property(f"{base}.inboundNATPools", pools, "must be a list")
    if len(pools) > 5:
        raise errors.invalid_property(f"{base}.inboundNATPools", len(pools), "at most 5 inbound NAT pools")
    result: list[NatPoolSpec] = []
    rule_count = 0
    for i, raw in enumerate(pools):
        nat = _parse_nat_pool(raw, f"{base}.inboundNATPools[{i}]")
        rule_count += len(nat.rules)
        for other in result:
            if other.name.lower() == nat.name.lower():
                raise errors.invalid_property(f"{base}.inboundNATPools[{i}].name", nat.name, "must be unique")
            if other.backend_port == nat.backend_port:
                raise errors.invalid_property(
                    f"{base}.inboundNATPools[{i}].backendPort",
                    nat.backend_port,
                    "must be unique within the pool",
                )
            if not (
                nat.frontend_port_range_end < other.frontend_port_range_start
                or nat.frontend_port_range_start > other.frontend_port_range_end
            ):
                raise errors.invalid_property(
                    f"{base}.inboundNATPools[{i}].frontendPortRangeStart",
                    nat.frontend_port_range_start,
                    f"the frontend port range overlaps that of NAT pool '{other.name}'",
                )
        result.append(nat)
    if rule_count > 25:
        raise errors.invalid_property(
            f"{base}.inboundNATPools", rule_count, "at most 25 network security group rules across the pool"
        )
    return tuple(result)


def _parse_nat_pool(value: Any, path: str) -> NatPoolSpec:
    nat = _obj(value, path)
    name = _str(_require(nat, "name", f"{path}.name"), f"{path}.name")
    if not NAT_POOL_NAME.match(name):
        raise errors.invalid_property(
            f"{path}.name",
            name,
            "must be 1-77 characters of letters, digits, underscores, periods and hyphens, "
            "starting with a letter, digit or underscore",
        )
    protocol = _str(_require(nat, "protocol", f"{path}.protocol"), f"{path}.protocol").lower()
    if protocol not in ("tcp", "udp"):
        raise errors.invalid_property(f"{path}.protocol", protocol, "must be 'tcp' or 'udp'")
    backend = _int(_require(nat, "backendPort", f"{path}.backendPort"), f"{path}.backendPort", 1, 65535)
    if backend in RESERVED_BACKEND_PORTS:
        raise errors.invalid_property(f"{path}.backendPort", backend, "ports 29876 and 29877 are reserved")
    start = _int(
        _require(nat, "frontendPortRangeStart", f"{path}.frontendPortRangeStart"),
        f"{path}.frontendPortRangeStart",
        1,
        65534,
    )
    end = _int(
        _require(nat, "frontendPortRangeEnd", f"{path}.frontendPortRangeEnd"),
        f"{path}.frontendPortRangeEnd",
        1,
        65534,
    )
    for port_path, port in ((f"{path}.frontendPortRangeStart", start), (f"{path}.frontendPortRangeEnd", end)):
        if 50000 <= port <= 55000:
            raise errors.invalid_property(
                port_path, port, "ports 50000-55000 are reserved by the Batch service"
            )
    if start < 50000 < end:
        raise errors.invalid_property(
            f"{path}.frontendPortRangeEnd", end, "the range must not include the reserved ports 50000-55000"
        )
    if end - start + 1 < 40:
        raise errors.invalid_property(
            f"{path}.frontendPortRangeEnd", end, "the frontend port range must hold at least 40 ports"
        )
    rules: list[NsgRule] = []
    raw_rules = nat.get("networkSecurityGroupRules") or []
    if not isinstance(raw_rules, list):
        raise errors.invalid_property(f"{path}.networkSecurityGroupRules", raw_rules, "must be a list")
    for j, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, f"{path}.networkSecurityGroupRules[{j}]")
        if any(r.priority == rule.priority for r in rules):
            raise errors.invalid_property(
                f"{path}.networkSecurityGroupRules[{j}].priority", rule.priority, "priorities must be unique"
            )
        rules.append(rule)
    return NatPoolSpec(name, protocol, backend, start, end, tuple(rules))


def _parse_rule(value: Any, path: str) -> NsgRule:
    rule = _obj(value, path)
    priority = _int(_require(rule, "priority", f"{path}.priority"), f"{path}.priority", 150, 4096)
    access = _str(_require(rule, "access", f"{path}.access"), f"{path}.access").lower()
    if access not in ("allow", "deny"):
        raise errors.invalid_property(f"{path}.access", access, "must be 'allow' or 'deny'")
    prefix = _str(
        _require(rule, "sourceAddressPrefix", f"{path}.sourceAddressPrefix"), f"{path}.sourceAddressPrefix"
    )
    if prefix != "*" and prefix.lower() not in _SERVICE_TAGS:
        try:
            ipaddress.ip_network(prefix, strict=False)
        except ValueError as exc:
            raise errors.invalid_property(
                f"{path}.sourceAddressPrefix",
                prefix,
                "must be '*', an IP address, a CIDR range or a service tag",
            ) from exc
    ranges = rule.get("sourcePortRanges") or ["*"]
    if not isinstance(ranges, list) or not all(isinstance(r, str) for r in ranges):
        raise errors.invalid_property(f"{path}.sourcePortRanges", ranges, "must be a list of strings")
    for r in ranges:
        if r != "*" and not re.fullmatch(r"\d{1,5}(-\d{1,5})?", r):
            raise errors.invalid_property(
                f"{path}.sourcePortRanges", r, "must be '*', a port or a range like 100-200"
            )
    return NsgRule(priority, access, prefix, tuple(ranges))


# Service tags resolved for a machine where every client is on loopback.
_SERVICE_TAGS = {"internet": False, "virtualnetwork": True, "azureloadbalancer": False}


def _address_matches(prefix: str, address: str) -> bool:
    if prefix == "*":
        return True
    tag = _SERVICE_TAGS.get(prefix.lower())
    if tag is not None:
        # Loopback clients count as inside the virtual network, never as Internet.
        return tag and ipaddress.ip_address(address).is_loopback
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False


def _port_matches(ranges: tuple[str, ...], port: int) -> bool:
    for r in ranges:
        if r == "*":
            return True
        low, _, high = r.partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


def _parse_metadata(value: Any) -> None:
    if not isinstance(value, list):
        raise errors.invalid_property("metadata", value, "must be a list of {name, value}")
    for i, item in enumerate(value):
        item = _obj(item, f"metadata[{i}]")
        _str(_require(item, "name", f"metadata[{i}].name"), f"metadata[{i}].name")
        _str(_require(item, "value", f"metadata[{i}].value"), f"metadata[{i}].value")


def _check_fits(total: int, nat_pools: tuple[NatPoolSpec, ...], path: str) -> None:
    for nat in nat_pools:
        if total > nat.size:
            raise errors.invalid_property(
                path,
                total,
                f"the pool would have more nodes than inbound NAT pool '{nat.name}' has frontend ports "
                f"({nat.size})",
            )


# --- resize / remove nodes --------------------------------------------------------------------


@dataclass(frozen=True)
class ResizeSpec:
    target_dedicated_nodes: int
    target_low_priority_nodes: int
    resize_timeout: timedelta


def parse_resize(
    body: Any, nat_pools: tuple[NatPoolSpec, ...], *, max_nodes: int = MAX_NODES_PER_POOL
) -> ResizeSpec:
    body = _obj(body, "poolResizeOptions")
    dedicated = _int(body.get("targetDedicatedNodes", 0), "targetDedicatedNodes", 0, max_nodes)
    low = _int(body.get("targetLowPriorityNodes", 0), "targetLowPriorityNodes", 0, max_nodes)
    if dedicated + low > max_nodes:
        raise errors.invalid_property(
            "targetLowPriorityNodes", low, f"a pool may have at most {max_nodes} nodes in all"
        )
    option = body.get("nodeDeallocationOption")
    if option is not None and option not in ("requeue", "terminate", "taskcompletion", "retaineddata"):
        raise errors.invalid_property(
            "nodeDeallocationOption", option, "must be requeue, terminate, taskcompletion or retaineddata"
        )
    _check_fits(dedicated + low, nat_pools, "targetDedicatedNodes")
    return ResizeSpec(dedicated, low, parse_resize_timeout(body.get("resizeTimeout"), "resizeTimeout"))


def parse_remove_nodes(body: Any) -> list[str]:
    body = _obj(body, "nodeRemoveOptions")
    nodes = _require(body, "nodeList", "nodeList")
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise errors.invalid_property("nodeList", nodes, "must be a list of node ids")
    if not 1 <= len(nodes) <= 100:
        raise errors.invalid_property("nodeList", len(nodes), "must name between 1 and 100 nodes")
    if body.get("resizeTimeout") is not None:
        parse_resize_timeout(body["resizeTimeout"], "resizeTimeout")
    return nodes


# --- node users -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """What a node user logs in with; the password is kept only as a salted hash."""

    expiry_time: datetime
    password_hash: bytes | None = field(default=None, repr=False)
    password_salt: bytes | None = field(default=None, repr=False)
    ssh_public_key: asyncssh.SSHKey | None = field(default=None, repr=False)
    ssh_public_key_text: str | None = field(default=None, repr=False)

    def password_matches(self, password: str) -> bool:
        if self.password_hash is None or self.password_salt is None:
            return False
        return hmac.compare_digest(_hash_password(password, self.password_salt), self.password_hash)

    def key_matches(self, key: asyncssh.SSHKey) -> bool:
        return self.ssh_public_key is not None and self.ssh_public_key.public_data == key.public_data


@dataclass(frozen=True)
class UserSpec:
    name: str
    is_admin: bool
    credentials: Credentials


def _hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, 1000)


def _credentials(body: dict[str, Any], now: datetime) -> Credentials:
    expiry = (
        _datetime(body["expiryTime"], "expiryTime")
        if body.get("expiryTime") is not None
        else now + DEFAULT_USER_LIFETIME
    )
    password_hash = salt = None
    if body.get("password") is not None:
        password = _str(body["password"], "password")
        if not password:
            raise errors.invalid_property("password", "", "must not be empty")
        salt = os.urandom(16)
        password_hash = _hash_password(password, salt)
    key = key_text = None
    if body.get("sshPublicKey") is not None:
        key_text = _str(body["sshPublicKey"], "sshPublicKey").strip()
        key = parse_ssh_public_key(key_text)
    return Credentials(expiry, password_hash, salt, key, key_text)


def parse_ssh_public_key(text: str) -> asyncssh.SSHKey:
    """An OpenSSH-format public key line ('ssh-rsa AAAA... comment'), as the service requires."""
    reason = "must be an SSH public key in OpenSSH format, e.g. 'ssh-rsa AAAA... comment'"
    if not text.startswith(SSH_KEY_PREFIXES) or "\n" in text:
        raise errors.invalid_property("sshPublicKey", _redact_key(text), reason)
    try:
        return asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise errors.invalid_property("sshPublicKey", _redact_key(text), reason) from exc


def _redact_key(text: str) -> str:
    return text[:24] + ("..." if len(text) > 24 else "")


def parse_user(body: Any, now: datetime) -> UserSpec:
    body = _obj(body, "user")
    name = _str(_require(body, "name", "name"), "name")
    if not USER_NAME.match(name):
        raise errors.invalid_property(
            "name",
            name,
            "must be 1-32 characters: a letter or underscore, then letters, digits, '_', '.', '-'",
        )
    if name.lower() in RESERVED_USER_NAMES:
        raise errors.invalid_property("name", name, "is reserved on Batch nodes")
    is_admin = _bool(body.get("isAdmin", False), "isAdmin")
    return UserSpec(name, is_admin, _credentials(body, now))


def parse_user_replace(body: Any, now: datetime) -> Credentials:
    """A full replace: omitted password / key are removed, omitted expiry resets to one day from now."""
    return _credentials(_obj(body, "user"), now)
