"""host.json, local.settings.json, %SETTING% references and timer schedules (pure parsing and rules)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.functions_host.host_config import HostConfigError, load_host_config, parse_host_config
from devstack.functions_host.queue_storage import MessageDecodingError, decode_content, encode_content
from devstack.functions_host.settings import (
    SettingsError,
    apply_settings,
    load_local_settings,
    resolve_setting_refs,
    storage_connection_string,
)
from devstack.functions_host.timer_trigger import ScheduleError, parse_schedule


def test_host_json_defaults_and_values() -> None:
    config = parse_host_config(
        {
            "version": "2.0",
            "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
            "logging": {"logLevel": {"default": "Warning"}},
            "extensions": {
                "http": {"routePrefix": "/v1/"},
                "queues": {"batchSize": 4, "visibilityTimeout": "00:00:05", "maxPollingInterval": 2000},
                "durableTask": {"hubName": "ProvisioningHub", "maxConcurrentActivityFunctions": 3},
            },
        }
    )
    assert config.http.route_prefix == "v1"
    assert config.queues.batch_size == 4 and config.queues.new_batch_threshold == 2
    assert config.queues.visibility_timeout == timedelta(seconds=5)
    assert config.queues.max_polling_interval == timedelta(seconds=2)
    assert config.queues.max_dequeue_count == 5 and config.queues.message_encoding == "base64"
    assert config.durable.hub_name == "ProvisioningHub"
    assert (config.durable.max_concurrent_activities, config.durable.max_concurrent_orchestrators) == (3, 10)
    assert parse_host_config({"version": "2.0"}).http.route_prefix == "api"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": "1.0"}, 'version must be "2.0"'),
        ({"version": "2.0", "extensions": []}, "extensions must be a JSON object"),
        (
            {"version": "2.0", "extensions": {"queues": {"maxDequeueCount": 0}}},
            "maxDequeueCount must be an integer",
        ),
        (
            {"version": "2.0", "extensions": {"queues": {"messageEncoding": "xml"}}},
            'must be "base64" or "none"',
        ),
        ({"version": "2.0", "extensions": {"queues": {"visibilityTimeout": "5s"}}}, "visibilityTimeout"),
        ({"version": "2.0", "extensions": {"queues": {"maxPollingInterval": 10}}}, "must be at least"),
        (
            {"version": "2.0", "extensions": {"durableTask": {"hubName": "my-hub"}}},
            "hubName must start with a letter",
        ),
        ({"version": "2.0", "extensions": {"http": {"routePrefix": 1}}}, "routePrefix must be a string"),
    ],
)
def test_bad_host_json_values_name_the_field(document: dict, message: str) -> None:
    with pytest.raises(HostConfigError, match=message):
        parse_host_config(document)


def test_missing_host_json_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HostConfigError, match="host.json not found"):
        load_host_config(tmp_path)


def test_local_settings_fall_back_to_the_sample_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "local.settings.sample.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"A": "sample", "B": 2, "C": True},
                "Host": {"LocalHttpPort": 7077},
            }
        )
    )
    settings = load_local_settings(tmp_path)
    assert settings.values == {"A": "sample", "B": "2", "C": "true"} and settings.local_http_port == 7077
    environ = {"A": "from-env"}
    assert apply_settings(settings.values, environ) == ["B", "C"]
    assert environ == {"A": "from-env", "B": "2", "C": "true"}
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"A": "real"}}))
    assert load_local_settings(tmp_path).values == {"A": "real"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"IsEncrypted": True, "Values": {}}, "IsEncrypted must be false"),
        ({"Values": {"A": {"nested": 1}}}, "Values.A must be a string"),
        ({"Values": [1]}, "Values must be a JSON object"),
        ({"Host": {"LocalHttpPort": "x"}}, "Host.LocalHttpPort must be a TCP port number"),
    ],
)
def test_bad_local_settings_name_the_field(tmp_path: Path, document: dict, message: str) -> None:
    (tmp_path / "local.settings.json").write_text(json.dumps(document))
    with pytest.raises(SettingsError, match=message):
        load_local_settings(tmp_path)


def test_setting_references_resolve_or_name_the_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_SUFFIX", "jobs")
    assert resolve_setting_refs("in-%QUEUE_SUFFIX%", what="queue name") == "in-jobs"
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(SettingsError, match="queue name refers to the app setting %NOT_SET_ANYWHERE%"):
        resolve_setting_refs("%NOT_SET_ANYWHERE%", what="queue name")


def test_connection_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsOther", "UseDevelopmentStorage=true")
    assert storage_connection_string("Other", what="binding") == "UseDevelopmentStorage=true"
    monkeypatch.delenv("Missing", raising=False)
    monkeypatch.delenv("AzureWebJobsMissing", raising=False)
    with pytest.raises(SettingsError, match="connection setting 'Missing' is not set"):
        storage_connection_string("Missing", what="binding")


def test_schedules() -> None:
    start = datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    every_five_minutes = parse_schedule("0 */5 * * * *", what="timer")
    assert every_five_minutes.next_after(start) == datetime(2025, 3, 1, 12, 5, tzinfo=UTC)
    weekdays = parse_schedule("30 0 9 * * Mon-Fri", what="timer")
    assert weekdays.next_after(start) == datetime(2025, 3, 3, 9, 0, 30, tzinfo=UTC)
    five_fields = parse_schedule("*/10 * * * *", what="timer")
    assert five_fields.next_after(start) == datetime(2025, 3, 1, 12, 10, tzinfo=UTC)
    interval = parse_schedule("01:30:00", what="timer")
    assert interval.next_after(start) == start + timedelta(hours=1, minutes=30)


@pytest.mark.parametrize("schedule", ["every minute", "* * * *", "61 * * * * *", "00:00:00", "0 0 * * * * *"])
def test_bad_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(ScheduleError, match="timer"):
        parse_schedule(schedule, what="timer")


def test_queue_message_encoding_round_trip() -> None:
    assert decode_content(encode_content("héllo", "base64"), "base64") == "héllo"
    assert decode_content(encode_content(b"\xff\x00", "base64"), "base64") == b"\xff\x00"
    assert decode_content("plain", "none") == "plain"
    with pytest.raises(MessageDecodingError, match="not valid base64"):
        decode_content("not base64!", "base64")
