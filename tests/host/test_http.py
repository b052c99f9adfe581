"""HTTP triggers through the host: routes and parameters, methods, auth levels and keys, responses, errors."""

from __future__ import annotations

import os
import stat

import pytest

from tests.fixtures.functions_host import HostFactory, RunningHost


@pytest.fixture(scope="module")
def http_host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RunningHost:
    factory = HostFactory(request, tmp_path_factory.mktemp("http"))
    try:
        yield factory("http_app", env={"HTTP_APP_OVERRIDDEN": "env-value"})
    finally:
        factory.stop_all()


def test_route_parameters_query_headers_and_body_reach_the_function(http_host: RunningHost) -> None:
    status, _, body = http_host.endpoint.request(
        "POST", "/api/pools/p-1/users/alice?verbose=yes", body=b"hello", headers={"X-Marker": "m1"}
    )
    assert status == 200
    assert body["method"] == "POST"
    assert body["route"] == {"poolId": "p-1", "user": "alice"}
    assert body["params"] == {"verbose": "yes"}
    assert body["body"] == "hello"
    assert body["marker"] == "m1"
    assert body["url_path"] == "api/pools/p-1/users/alice"


def test_optional_route_parameter_may_be_left_out(http_host: RunningHost) -> None:
    status, _, body = http_host.endpoint.request("GET", "/api/pools/p-1/users")
    assert status == 200
    assert body["route"] == {"poolId": "p-1"}


def test_a_method_the_function_does_not_accept_finds_no_function(http_host: RunningHost) -> None:
    status, _, _ = http_host.endpoint.request("DELETE", "/api/pools/p-1/users/alice")
    assert status == 404


def test_route_constraints_and_literal_segments_win_over_parameters(http_host: RunningHost) -> None:
    request = http_host.endpoint.request
    assert request("GET", "/api/items/42")[2] == {"id": "42"}
    assert request("GET", "/api/items")[2] == {"id": None}
    assert request("GET", "/api/items/special")[2] == {"special": True}
    assert request("GET", "/api/items/not-a-number")[0] == 404


def test_function_level_needs_a_key(http_host: RunningHost) -> None:
    endpoint = http_host.endpoint
    assert endpoint.request("GET", "/api/items/1", key=False)[0] == 401
    assert endpoint.request("GET", "/api/items/1", key="wrong-key")[0] == 401
    assert endpoint.request("GET", f"/api/items/1?code={endpoint.key}", key=False)[0] == 200
    assert endpoint.request("GET", "/api/items/1", key=True)[0] == 200
    assert endpoint.request("GET", "/api/items/1", key=endpoint.master_key)[0] == 200


def test_anonymous_level_needs_no_key(http_host: RunningHost) -> None:
    status, _, body = http_host.endpoint.request("GET", "/api/public", key=False)
    assert (status, body) == (200, "anyone may call this")


def test_admin_level_needs_the_master_key(http_host: RunningHost) -> None:
    endpoint = http_host.endpoint
    assert endpoint.request("POST", "/api/admin-op", key=True)[0] == 401
    status, _, body = endpoint.request("POST", "/api/admin-op", key=endpoint.master_key)
    assert (status, body) == (200, "admin done")


def test_the_functions_response_comes_back_as_it_is(http_host: RunningHost) -> None:
    status, headers, body = http_host.endpoint.request("PUT", "/api/created", json={"name": "n1"})
    assert status == 201
    assert body == {"received": {"name": "n1"}}
    assert headers["X-Resource"] == "r-1"
    assert headers["Content-Type"] == "application/json"
    assert headers["Set-Cookie"].startswith("session=abc")


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/api/nothing"), ("GET", "/api/a-dict")])
def test_returning_something_other_than_a_response_fails_as_the_runtime_fails_it(
    http_host: RunningHost, method: str, path: str
) -> None:
    """azure-functions-runtime cannot encode None or a dict for the http $return binding: the invocation
    fails, so the host answers 500 (as on Azure), and the log names the runtime's error."""
    assert http_host.endpoint.request(method, path)[0] == 500
    assert "unable to encode outgoing TypedData" in http_host.log()


def test_an_exception_answers_500_without_details_and_is_logged(http_host: RunningHost) -> None:
    status, _, body = http_host.endpoint.request("GET", "/api/boom")
    assert status == 500
    assert "internal detail" not in body and "Traceback" not in body
    assert "function=boom trigger=httpTrigger" in http_host.log()
    assert "outcome=failed (RuntimeError)" in http_host.log()


def test_settings_come_from_local_settings_and_the_environment_wins(http_host: RunningHost) -> None:
    status, _, body = http_host.endpoint.request("GET", "/api/settings")
    assert status == 200
    assert body == {
        "from_file": "file-value",
        "overridden": "env-value",
        "function_name": "settings",
        "has_invocation_id": True,
    }


def test_one_log_line_per_invocation_and_the_key_only_in_the_banner(http_host: RunningHost) -> None:
    endpoint = http_host.endpoint
    endpoint.request("GET", f"/api/public?code={endpoint.key}", key=False)
    endpoint.request("GET", "/api/items/7")
    lines = http_host.log().splitlines()
    assert any(
        "function=public trigger=httpTrigger" in line and "outcome=succeeded status=200" in line
        for line in lines
    )
    assert any("function=items" in line and "duration_ms=" in line for line in lines)
    with_key = [line for line in lines if endpoint.key in line or endpoint.master_key in line]
    assert len(with_key) == 1 and with_key[0].startswith("functions-host ready at")


def test_keys_file_is_private_and_reused_across_restarts(functions_host) -> None:
    host = functions_host("http_app")
    keys_file = host.data_dir / "host-keys.json"
    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    first_key = host.key
    host.restart()
    assert host.key == first_key
    assert host.endpoint.request("GET", "/api/items/3")[0] == 200
