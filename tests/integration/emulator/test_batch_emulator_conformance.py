"""Conformance with the published Batch REST specification, over HTTP with the real SDK's signing: api-version
validation, each operation's response headers, odata.metadata, $select over the model's properties, error
bodies, and client-request-id returned only when asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from devstack.batch_emulator.conformance import API_VERSIONS

SDK_VERSION = "2025-06-01"  # what azure-batch 15.1.0 sends


def send(client, method: str, path: str, version: str = SDK_VERSION, **kwargs):
    """The raw answer (this client's send_request raises on 4xx/5xx; the answer is kept on the error)."""
    separator = "&" if "?" in path else "?"
    try:
        return client.send_request(HttpRequest(method, f"{path}{separator}api-version={version}", **kwargs))
    except HttpResponseError as exc:
        return exc.response


@pytest.mark.parametrize("version", ["1999-01-01", "2025-06-02", "latest"])
def test_unknown_api_version_is_refused(batch_client, version) -> None:
    response = send(batch_client, "GET", "/pools", version)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "UnsupportedRequestVersion"
    assert {"key": "QueryParameterValue", "value": version} in body["values"]
    assert body["odata.metadata"].endswith(
        "/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
    )


@pytest.mark.parametrize(
    "version",
    [
        "2026-10-01",  # the latest stable specification
        "2025-06-01",  # azure-batch 15.1.0 (Python)
        "2024-02-01.19.0",  # azure-batch 15.0.0b1, which the Azure CLI 2.91 uses
        "2022-10-01.16.0",  # @azure/batch 10.2.0 (JavaScript)
    ],
)
def test_the_versions_current_clients_send_are_accepted(batch_client, version) -> None:
    assert version in API_VERSIONS
    assert send(batch_client, "GET", "/pools", version).status_code == 200


def test_missing_api_version_is_its_own_error(batch_client) -> None:
    try:
        response = batch_client.send_request(HttpRequest("GET", "/pools"))
    except HttpResponseError as exc:
        response = exc.response
    assert response.status_code == 400 and response.json()["code"] == "MissingRequiredQueryParameter"


def test_select_takes_any_property_of_the_pool_model(batch_client, make_pool) -> None:
    pool_id = make_pool(0, ssh=False)
    response = send(batch_client, "GET", f"/pools/{pool_id}?$select=id,userAccounts,state")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == pool_id and body["state"] == "active"
    assert "userAccounts" not in body  # a model property the pool does not have is omitted, not refused
    assert set(body) == {"odata.metadata", "id", "state"}
    listed = batch_client.list_pools(filter=f"id eq '{pool_id}'", select=["id", "userAccounts", "identity"])
    assert [p.id for p in listed] == [pool_id]


def test_select_of_a_property_outside_the_model_is_refused(batch_client, make_pool) -> None:
    pool_id = make_pool(0, ssh=False)
    response = send(batch_client, "GET", f"/pools/{pool_id}?$select=id,noSuchProperty")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidQueryParameterValue"
    assert {"key": "QueryParameterName", "value": "$select"} in body["values"]


def test_get_pool_answer_shape_and_headers(batch_emulator, batch_client, make_pool) -> None:
    pool_id = make_pool(0, ssh=False)
    response = send(batch_client, "GET", f"/pools/{pool_id}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;odata=minimalmetadata"
    assert {"ETag", "Last-Modified", "request-id"} <= set(response.headers)
    assert "DataServiceId" not in response.headers and "client-request-id" not in response.headers
    body = response.json()
    assert body["odata.metadata"] == f"{batch_emulator.url}/$metadata#pools/@Element"
    assert body["eTag"] == response.headers["ETag"]
    for absent in ("resizeErrors", "metadata", "networkConfiguration", "startTask", "userAccounts"):
        assert absent not in body  # the service omits what is not set, empty collections included
    assert body["state"] == "active" and body["allocationState"] == "steady"  # enums in lower camel case


def test_client_request_id_is_returned_only_when_asked_for(batch_client) -> None:
    plain = send(batch_client, "GET", "/pools", headers={"client-request-id": "id-1"})
    assert "client-request-id" not in plain.headers
    asked = send(
        batch_client,
        "GET",
        "/pools",
        headers={"client-request-id": "id-2", "return-client-request-id": "true"},
    )
    assert asked.headers["client-request-id"] == "id-2"


def test_each_user_and_pool_operation_carries_the_specified_headers(
    batch_emulator, batch_client, make_pool, wait_for_nodes
) -> None:
    pool_id = make_pool(1)
    (node,) = wait_for_nodes(pool_id, 1)
    user_url = f"{batch_emulator.url}/pools/{pool_id}/nodes/{node.id}/users/zed"
    expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    content = {"headers": {"content-type": "application/json; odata=minimalmetadata"}}

    created = send(
        batch_client,
        "POST",
        f"/pools/{pool_id}/nodes/{node.id}/users",
        json={"name": "zed", "password": "pw", "expiryTime": expiry},
        **content,
    )
    assert created.status_code == 201 and created.text() == ""
    assert created.headers["DataServiceId"] == created.headers["Location"] == user_url
    assert {"ETag", "Last-Modified"} <= set(created.headers)

    replaced = send(
        batch_client,
        "PUT",
        f"/pools/{pool_id}/nodes/{node.id}/users/zed",
        json={"password": "pw2", "expiryTime": expiry},
        **content,
    )
    assert replaced.status_code == 200 and replaced.headers["DataServiceId"] == user_url
    assert {"ETag", "Last-Modified"} <= set(replaced.headers)

    login = send(batch_client, "GET", f"/pools/{pool_id}/nodes/{node.id}/remoteloginsettings")
    assert login.status_code == 200 and {"ETag", "Last-Modified"} <= set(login.headers)
    assert login.json()["odata.metadata"].endswith(
        "$metadata#Microsoft.Azure.Batch.Protocol.Entities.RemoteLoginSettings"
    )

    got = send(batch_client, "GET", f"/pools/{pool_id}/nodes/{node.id}")
    assert got.json()["odata.metadata"] == f"{batch_emulator.url}/$metadata#nodes/@Element"
    assert {"ETag", "Last-Modified"} <= set(got.headers)

    deleted = send(batch_client, "DELETE", f"/pools/{pool_id}/nodes/{node.id}/users/zed")
    assert deleted.status_code == 200
    assert not {"DataServiceId", "ETag", "Last-Modified"} & set(deleted.headers)

    pool_deleted = send(batch_client, "DELETE", f"/pools/{pool_id}")
    assert pool_deleted.status_code == 202
    assert not {"DataServiceId", "ETag", "Last-Modified"} & set(pool_deleted.headers)


def test_create_pool_headers(batch_emulator, batch_client, make_pool, ubuntu_image) -> None:
    pool_id = make_pool(0, ssh=False)
    body = m.BatchPoolCreateOptions(
        id=pool_id + "b",
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=m.VirtualMachineConfiguration(
            image_reference=ubuntu_image.image_reference, node_agent_sku_id=ubuntu_image.node_agent_sku_id
        ),
    ).as_dict()
    response = send(
        batch_client,
        "POST",
        "/pools",
        json=body,
        headers={"content-type": "application/json; odata=minimalmetadata"},
    )
    try:
        assert response.status_code == 201 and response.text() == ""
        url = f"{batch_emulator.url}/pools/{pool_id}b"
        assert response.headers["DataServiceId"] == response.headers["Location"] == url
        assert {"ETag", "Last-Modified", "request-id"} <= set(response.headers)
    finally:
        send(batch_client, "DELETE", f"/pools/{pool_id}b")


def test_pool_actions_name_themselves_in_data_service_id(batch_emulator, batch_client, make_pool) -> None:
    pool_id = make_pool(0, ssh=False)
    content = {"headers": {"content-type": "application/json; odata=minimalmetadata"}}
    resized = send(
        batch_client, "POST", f"/pools/{pool_id}/resize", json={"targetDedicatedNodes": 0}, **content
    )
    assert resized.status_code == 202
    assert resized.headers["DataServiceId"] == f"{batch_emulator.url}/pools/{pool_id}/resize"
    stopped = send(batch_client, "POST", f"/pools/{pool_id}/stopresize")
    assert stopped.status_code == 202
    assert stopped.headers["DataServiceId"] == f"{batch_emulator.url}/pools/{pool_id}/stopresize"


def test_error_body_shape(batch_client) -> None:
    with pytest.raises(HttpResponseError) as info:
        batch_client.get_pool("no-such-pool")
    body = info.value.response.json()
    assert list(body)[:3] == ["odata.metadata", "code", "message"]
    assert body["code"] == "PoolNotFound" and body["message"]["lang"] == "en-US"
    assert body["values"] == [{"key": "PoolId", "value": "no-such-pool"}]


def test_supported_images_omit_what_an_image_does_not_have(batch_client) -> None:
    images = send(batch_client, "GET", "/supportedimages").json()["value"]
    assert images
    for image in images:
        assert image.get("capabilities", ["x"]) != []  # absent, never an empty list
        assert "batchSupportEndOfLife" not in image or image["batchSupportEndOfLife"]
    assert any("batchSupportEndOfLife" not in image for image in images)


def test_filter_takes_model_properties_the_pool_does_not_set(batch_client, make_pool) -> None:
    pool_id = make_pool(0, ssh=False)
    named = list(batch_client.list_pools(filter=f"id eq '{pool_id}' and displayName eq null"))
    assert [p.id for p in named] == [pool_id]
    assert list(batch_client.list_pools(filter=f"id eq '{pool_id}' and autoScaleFormula ne null")) == []
    response = send(batch_client, "GET", "/pools?$filter=noSuchProperty eq 1")
    assert response.status_code == 400 and response.json()["code"] == "InvalidQueryParameterValue"
