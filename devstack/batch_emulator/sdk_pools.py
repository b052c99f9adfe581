"""Client-side pool specs built with the real azure-batch models, shared by the walk-through, the bench and
the emulator's tests: the newest verified Ubuntu image, an SSH inbound NAT pool, a pool with a start task."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from azure.batch import BatchClient
from azure.batch import models as m


def newest_verified_ubuntu(client: BatchClient) -> m.BatchSupportedImage:
    """The verified Linux image with the highest Ubuntu version whose Batch support has not ended."""
    now = datetime.now(UTC)
    candidates = []
    for image in client.list_supported_images(filter="verificationType eq 'verified' and osType eq 'linux'"):
        match = re.search(r"ubuntu (\d+)\.(\d+)", image.node_agent_sku_id)
        ended = image.batch_support_end_of_life is not None and image.batch_support_end_of_life <= now
        if match and not ended:
            candidates.append(((int(match.group(1)), int(match.group(2))), image))
    if not candidates:
        raise RuntimeError("list_supported_images offers no current verified Ubuntu image")
    return max(candidates, key=lambda c: c[0])[1]


def ssh_network(start: int, end: int, rules: list | None = None) -> m.NetworkConfiguration:
    """An inbound NAT pool for SSH (backend port 22) on frontend ports start..end, with optional NSG rules."""
    return m.NetworkConfiguration(
        endpoint_configuration=m.BatchPoolEndpointConfiguration(
            inbound_nat_pools=[
                m.BatchInboundNatPool(
                    name="ssh",
                    protocol="tcp",
                    backend_port=22,
                    frontend_port_range_start=start,
                    frontend_port_range_end=end,
                    network_security_group_rules=rules,
                )
            ]
        )
    )


def ssh_pool(
    pool_id: str,
    image: m.BatchSupportedImage,
    nodes: int,
    command_line: str,
    *,
    vm_size: str = "standard_d2s_v3",
    port_start: int = 40000,
    elevated: bool = False,
) -> m.BatchPoolCreateOptions:
    """A pool of `nodes` dedicated nodes with a start task that must succeed and one SSH port per node."""
    identity = (
        m.UserIdentity(auto_user=m.AutoUserSpecification(scope="pool", elevation_level="admin"))
        if elevated
        else None
    )
    return m.BatchPoolCreateOptions(
        id=pool_id,
        vm_size=vm_size,
        virtual_machine_configuration=m.VirtualMachineConfiguration(
            image_reference=image.image_reference, node_agent_sku_id=image.node_agent_sku_id
        ),
        target_dedicated_nodes=nodes,
        start_task=m.BatchStartTask(command_line=command_line, user_identity=identity, wait_for_success=True),
        network_configuration=ssh_network(port_start, port_start + max(nodes, 40) - 1),
    )
