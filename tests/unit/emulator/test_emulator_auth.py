"""SharedKey verification: frozen vectors computed with the azure-batch SDK's own signing policy, and
refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from devstack.batch_emulator import DEV_ACCOUNT, DEV_KEY
from devstack.batch_emulator.auth import sign, string_to_sign, verify_request
from devstack.batch_emulator.exceptions import BatchServiceError

OCP_DATE = "Tue, 01 Jul 2025 12:00:00 GMT"
NOW = datetime(2025, 7, 1, 12, 5, tzinfo=UTC)

# Computed once with BatchSharedKeyAuthPolicy (azure-batch 15.1.0) for the requests below, then frozen.
GET_PATH = "/pools/my%20pool/nodes"
GET_QUERY = "api-version=2025-06-01&%24filter=state%20eq%20%27idle%27&maxresults=10"
GET_HEADERS = [
    ("ocp-date", OCP_DATE),
    ("client-request-id", "00000000-0000-0000-0000-000000000001"),
    ("Accept", "application/json"),
]
GET_AUTH = "SharedKey devbatchaccount1:2FXU4eZI4wIR7kEkXV4rA3D6UzXRteF6gVllTa8Hil0="
POST_HEADERS = [
    ("content-type", "application/json; odata=minimalmetadata"),
    ("Content-Length", "10"),
    ("ocp-date", OCP_DATE),
]
POST_AUTH = "SharedKey devbatchaccount1:qCcXplkyMJK86Q+YIXbVCY9rWmOp7cUuU4ieI9MKXWM="


def verify(method: str, path: str, query: str, headers: list[tuple[str, str]], **kwargs) -> None:
    verify_request(
        method=method,
        raw_path=path,
        query=query,
        headers=headers,
        account=kwargs.pop("account", DEV_ACCOUNT),
        key=kwargs.pop("key", DEV_KEY),
        now=kwargs.pop("now", NOW),
    )


def test_known_get_vector_verifies() -> None:
    verify("GET", GET_PATH, GET_QUERY, [*GET_HEADERS, ("Authorization", GET_AUTH)])


def test_known_post_vector_verifies() -> None:
    verify("POST", "/pools", "api-version=2025-06-01", [*POST_HEADERS, ("Authorization", POST_AUTH)])


def test_signature_from_the_sdk_policy_verifies() -> None:
    request = HttpRequest(
        "DELETE",
        "http://127.0.0.1:9/pools/p-1/nodes/n_1/users/alice?api-version=2025-06-01&timeOut=30",
        headers={"ocp-date": OCP_DATE},
    )
    BatchSharedKeyAuthPolicy(AzureNamedKeyCredential(DEV_ACCOUNT, DEV_KEY)).on_request(
        PipelineRequest(request, PipelineContext(None))
    )
    # On the wire the SDK's transport adds `Content-Length: 0` to a bodiless DELETE (the value it signed).
    verify(
        "DELETE",
        "/pools/p-1/nodes/n_1/users/alice",
        "api-version=2025-06-01&timeOut=30",
        [*request.headers.items(), ("Content-Length", "0")],
    )


def _sign_like_the_js_sdk(method: str, path: str, query: str, headers: list[tuple[str, str]]) -> str:
    """The signing rule of @azure/batch 10.x, restated: an absent Content-Length signs as an empty value for
    every method but POST ("0"); only headers starting with `ocp-` are canonicalised."""
    names = {k.lower(): v for k, v in headers}
    length = names.get("content-length") or ("0" if method == "POST" else "")
    lines = [method, names.get("content-encoding", ""), names.get("content-language", ""), length]
    lines += [names.get(h, "") for h in ("content-md5", "content-type", "date", "if-modified-since")]
    lines += [names.get(h, "") for h in ("if-match", "if-none-match", "if-unmodified-since", "range")]
    text = "\n".join(lines) + "\n"
    text += "".join(f"{k}:{v}\n" for k, v in sorted(names.items()) if k.startswith("ocp-"))
    text += f"/{DEV_ACCOUNT}{path}"
    for pair in sorted(query.split("&")):
        name, _, value = pair.partition("=")
        text += f"\n{name}:{value}"
    return f"SharedKey {DEV_ACCOUNT}:{sign(text, DEV_KEY)}"


def test_a_bodiless_delete_without_content_length_verifies() -> None:
    # What @azure/batch sends for delete_pool / delete_node_user: no Content-Length header at all.
    path, query = "/pools/p-1/nodes/n_1/users/alice", "api-version=2022-10-01.16.0"
    headers = [("ocp-date", OCP_DATE), ("client-request-id", "c1")]
    verify(
        "DELETE",
        path,
        query,
        [*headers, ("Authorization", _sign_like_the_js_sdk("DELETE", path, query, headers))],
    )


def test_a_signature_over_a_content_length_that_was_not_sent_is_refused() -> None:
    # Signed as if `Content-Length: 0` had been sent, but it was not: the strings differ, 403.
    path, query = "/pools/p-1", "api-version=2025-06-01"
    headers = [("ocp-date", OCP_DATE)]
    signed_with_zero = _sign_like_the_js_sdk("DELETE", path, query, [*headers, ("Content-Length", "0")])
    error = _refusal(
        method="DELETE", path=path, query=query, headers=[*headers, ("Authorization", signed_with_zero)]
    )
    assert error.code == "AuthenticationFailed"


def _refusal(**kwargs) -> BatchServiceError:
    args = {
        "method": "GET",
        "path": GET_PATH,
        "query": GET_QUERY,
        "headers": [*GET_HEADERS, ("Authorization", GET_AUTH)],
    }
    args.update(kwargs)
    with pytest.raises(BatchServiceError) as info:
        verify(args.pop("method"), args.pop("path"), args.pop("query"), args.pop("headers"), **args)
    assert info.value.status == 403
    assert info.value.code == "AuthenticationFailed"
    return info.value


def test_wrong_key_is_refused() -> None:
    other_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
    error = _refusal(key=other_key)
    assert "MAC signature" in dict(error.values)["AuthenticationErrorDetail"]


def test_tampered_query_is_refused() -> None:
    _refusal(query=GET_QUERY.replace("maxresults=10", "maxresults=11"))


def test_tampered_path_is_refused() -> None:
    _refusal(path="/pools/other/nodes")


def test_missing_authorization_is_refused() -> None:
    error = _refusal(headers=GET_HEADERS)
    assert "missing" in dict(error.values)["AuthenticationErrorDetail"]


def test_other_account_is_refused() -> None:
    _refusal(headers=[*GET_HEADERS, ("Authorization", GET_AUTH.replace("devbatchaccount1", "someoneelse"))])


def test_date_more_than_15_minutes_off_is_refused() -> None:
    error = _refusal(now=datetime(2025, 7, 1, 12, 16, tzinfo=UTC))
    assert "15 minutes" in dict(error.values)["AuthenticationErrorDetail"]
    _refusal(now=datetime(2025, 7, 1, 11, 44, tzinfo=UTC))


def test_date_within_15_minutes_either_way_is_accepted() -> None:
    headers = [*GET_HEADERS, ("Authorization", GET_AUTH)]
    verify("GET", GET_PATH, GET_QUERY, headers, now=datetime(2025, 7, 1, 11, 46, tzinfo=UTC))
    verify("GET", GET_PATH, GET_QUERY, headers, now=datetime(2025, 7, 1, 12, 14, tzinfo=UTC))


def test_signing_string_layout() -> None:
    text = string_to_sign("DELETE", "/pools/a", "api-version=1&b=", [("ocp-date", OCP_DATE)], "acct")
    lines = text.split("\n")
    assert lines[0] == "DELETE"
    assert lines[3] == ""  # no Content-Length was received: an empty value, whatever the method
    assert f"ocp-date:{OCP_DATE}" in lines
    assert lines[-2:] == ["/acct/pools/a", "api-version:1"]  # empty query values are left out
