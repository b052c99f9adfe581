"""What the published Batch REST specification fixes about the wire, in one place: the api-versions the
service answers, the model's property names ($select / $filter), the response headers of each operation
and the `odata.metadata` of each answer. README.md says where each fact comes from."""

from __future__ import annotations

# Published Batch data-plane versions (azure-rest-api-specs, specification/batch/data-plane), newest first.
# azure-batch 15.1.0 (Python) sends 2025-06-01; @azure/batch 10.2.0 (JavaScript) sends 2022-10-01.16.0.
API_VERSIONS: tuple[str, ...] = (
    "2026-10-01",
    "2025-06-01",
    "2024-07-01.20.0",
    "2024-02-01.19.0",
    "2023-11-01.18.0",
    "2023-05-01.17.0",
    "2022-10-01.16.0",
    "2022-01-01.15.0",
    "2021-06-01.14.0",
    "2020-09-01.12.0",
    "2020-03-01.11.0",
    "2019-08-01.10.0",
    "2019-06-01.9.0",
    "2018-12-01.8.0",
    "2018-08-01.7.0",
    "2018-03-01.6.1",
    "2017-09-01.6.0",
    "2017-06-01.5.1",
    "2017-05-01.5.0",
    "2017-01-01.4.0",
    "2016-07-01.3.1",
    "2016-02-01.3.0",
    "2015-12-01.2.2",
    "2015-11-01.2.1",
    "2015-06-01.2.0",
    "2015-03-01.1.1",
    "2014-10-01.1.0",
)

# The model's properties (definitions BatchPool, BatchNode, BatchSupportedImage, BatchPoolNodeCounts), in the
# specification's order. $select and $filter take any of them; a property the emulator does not produce is
# simply absent from the answer, as the service omits unset properties.
POOL_PROPERTIES: tuple[str, ...] = (
    "id",
    "displayName",
    "url",
    "eTag",
    "lastModified",
    "creationTime",
    "state",
    "stateTransitionTime",
    "allocationState",
    "allocationStateTransitionTime",
    "vmSize",
    "virtualMachineConfiguration",
    "resizeTimeout",
    "resizeErrors",
    "resourceTags",
    "currentDedicatedNodes",
    "currentLowPriorityNodes",
    "targetDedicatedNodes",
    "targetLowPriorityNodes",
    "enableAutoScale",
    "autoScaleFormula",
    "autoScaleEvaluationInterval",
    "autoScaleRun",
    "enableInterNodeCommunication",
    "networkConfiguration",
    "startTask",
    "applicationPackageReferences",
    "taskSlotsPerNode",
    "taskSchedulingPolicy",
    "userAccounts",
    "metadata",
    "stats",
    "mountConfiguration",
    "identity",
    "targetNodeCommunicationMode",
    "currentNodeCommunicationMode",
    "upgradePolicy",
)
NODE_PROPERTIES: tuple[str, ...] = (
    "id",
    "url",
    "state",
    "schedulingState",
    "stateTransitionTime",
    "lastBootTime",
    "allocationTime",
    "ipAddress",
    "ipv6Address",
    "affinityId",
    "vmSize",
    "totalTasksRun",
    "runningTasksCount",
    "runningTaskSlotsCount",
    "totalTasksSucceeded",
    "recentTasks",
    "startTask",
    "startTaskInfo",
    "certificateReferences",
    "errors",
    "isDedicated",
    "endpointConfiguration",
    "nodeAgentInfo",
    "virtualMachineInfo",
)
IMAGE_PROPERTIES: tuple[str, ...] = (
    "nodeAgentSKUId",
    "imageReference",
    "osType",
    "capabilities",
    "batchSupportEndOfLife",
    "verificationType",
)
NODE_COUNTS_PROPERTIES: tuple[str, ...] = ("poolId", "dedicated", "lowPriority")

# Response headers each operation carries besides request-id and DataServiceVersion (and client-request-id
# only when asked for with `return-client-request-id: true`): the specification's
# `responses.<status>.headers`, plus `Location` on creates, which the service's recorded answers carry (Azure
# CLI test recordings: a 201 from create pool has Location and DataServiceId, both the new pool's URL). For
# actions (resize, stopresize, removenodes) the recorded DataServiceId is the action's own URL.
ENTITY = ("ETag", "Last-Modified")
ENTITY_WITH_ID = ("DataServiceId", "ETag", "Last-Modified")
CREATED = ("DataServiceId", "Location", "ETag", "Last-Modified")
OPERATION_HEADERS: dict[str, tuple[str, ...]] = {
    "create_pool": CREATED,
    "get_pool": ENTITY,
    "pool_exists": ENTITY,
    "delete_pool": (),
    "resize_pool": ENTITY_WITH_ID,
    "stop_pool_resize": ENTITY_WITH_ID,
    "remove_nodes": ENTITY_WITH_ID,
    "get_node": ENTITY,
    "get_node_remote_login_settings": ENTITY,
    "create_node_user": CREATED,
    "replace_node_user": ENTITY_WITH_ID,
    "delete_node_user": (),
}

# `odata.metadata` of JSON answers, after "{account url}/$metadata#", as the service's documented answers show
# them (list_supported_images and list_pool_node_counts: none documented, none sent).
ODATA_METADATA: dict[str, str] = {
    "list_pools": "pools",
    "get_pool": "pools/@Element",
    "list_nodes": "nodes",
    "get_node": "nodes/@Element",
    "get_node_remote_login_settings": "Microsoft.Azure.Batch.Protocol.Entities.RemoteLoginSettings",
    "error": "Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
}
