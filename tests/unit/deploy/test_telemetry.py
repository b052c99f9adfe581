"""Failures an operator must find are logged at warning/error with their code and the run's ids as fields."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from activities.events import publish_event
from entry.verdict import Verdict
from provisioning import telemetry

LOG = logging.getLogger("tests.telemetry")


def only(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
    return caplog.records[0]


def test_a_rejected_request_is_a_warning_with_its_code_and_the_failing_fields(caplog):
    verdict = Verdict(
        "rejected",
        "pool-1",
        "req-1",
        errors=[{"field": "users[0].name", "rule": "r", "message": "m"}, {"field": "vmSize"}],
    )
    with caplog.at_level(logging.INFO):
        telemetry.log_request_verdict(LOG, verdict, source="queue")
    record = only(caplog)
    assert record.levelno == logging.WARNING
    assert (record.event, record.code, record.poolId, record.requestId) == (
        "request-rejected",
        "RequestRejected",
        "pool-1",
        "req-1",
    )
    assert record.fields == "users[0].name,vmSize"
    assert "code=RequestRejected" in record.getMessage() and "poolId=pool-1" in record.getMessage()


def test_a_conflicting_request_is_a_warning_and_an_accepted_one_is_info(caplog):
    with caplog.at_level(logging.INFO):
        telemetry.log_request_verdict(LOG, Verdict("conflict", "p", "r", "provision-r"), source="http")
        telemetry.log_request_verdict(LOG, Verdict("accepted", "p", "r", "provision-r"), source="http")
    conflict, accepted = caplog.records
    assert (conflict.levelno, conflict.code, conflict.instanceId) == (
        logging.WARNING,
        "RequestIdConflict",
        "provision-r",
    )
    assert accepted.levelno == logging.INFO and accepted.instanceId == "provision-r"
    assert not hasattr(accepted, "code")


def pool_event(outcome: str, error: dict | None = None) -> dict:
    event = {
        "type": "pool-failed" if outcome == "failed" else "pool-ready",
        "eventId": f"provision-r1:{outcome}",
        "poolId": "pool-1",
        "requestId": "r1",
        "instanceId": "provision-r1",
        "outcome": outcome,
        "counts": {"nodesIdle": 1, "nodesTotal": 3, "nodesFailed": 2, "usersGranted": 1, "usersTotal": 3},
        "statusUrl": "https://app.example/api/pools/pool-1",
    }
    if error:
        event["error"] = error
    return event


@pytest.mark.parametrize(
    ("outcome", "level", "code"),
    [
        ("failed", logging.ERROR, "AccountCoreQuotaReached"),
        ("partial", logging.WARNING, "PartialProvisioning"),
        ("completed", logging.INFO, None),
    ],
)
def test_the_end_of_a_run_logs_its_outcome_at_the_matching_level(caplog, outcome, level, code):
    error = {"code": "AccountCoreQuotaReached", "message": "quota reached"} if outcome == "failed" else None
    with caplog.at_level(logging.INFO):
        telemetry.log_pool_outcome(LOG, pool_event(outcome, error))
    record = only(caplog)
    assert record.levelno == level
    assert getattr(record, "code", None) == code
    assert (record.poolId, record.requestId, record.instanceId, record.outcome) == (
        "pool-1",
        "r1",
        "provision-r1",
        outcome,
    )
    assert record.nodesFailed == 2


def test_the_publish_activity_logs_the_failed_outcome_at_error(caplog, monkeypatch):
    sent = []

    class Publisher:
        def __init__(self, settings) -> None:
            self.publish = sent.append

    monkeypatch.setattr("activities.events.EventPublisher", Publisher)
    monkeypatch.setattr("activities.events.settings", lambda: None)
    event = pool_event("failed", {"code": "PoolExistsWithDifferentSpec", "message": "exists"})
    with caplog.at_level(logging.INFO, logger="activities.events"):
        publish_event(event)
    assert sent == [event]
    record = only(caplog)
    assert (record.levelno, record.code, record.instanceId) == (
        logging.ERROR,
        "PoolExistsWithDifferentSpec",
        "provision-r1",
    )


def test_a_failed_user_deletion_is_an_error_with_the_service_code(caplog):
    results = {
        "alice": {"ok": True, "result": "deleted"},
        "bob": {"ok": False, "error": {"code": "OperationInvalidForCurrentState", "message": "m"}},
    }
    with caplog.at_level(logging.INFO):
        telemetry.log_user_deletions(LOG, "pool-1", "node-1", results)
    failed, summary = caplog.records
    assert (failed.levelno, failed.code, failed.user, failed.nodeId) == (
        logging.ERROR,
        "OperationInvalidForCurrentState",
        "bob",
        "node-1",
    )
    assert summary.levelno == logging.INFO and "removed 1 of 2 users" in summary.getMessage()


def test_a_failed_revocation_is_an_error(caplog):
    with caplog.at_level(logging.INFO):
        telemetry.log_revoke_failed(LOG, "pool-1", "alice", "revoke-x", {"runtimeStatus": "Failed"})
    record = only(caplog)
    assert (record.levelno, record.code, record.instanceId) == (logging.ERROR, "RevokeFailed", "revoke-x")


def test_fields_never_overwrite_log_record_attributes():
    with pytest.raises(ValueError, match="clash"):
        telemetry.log_event(LOG, logging.INFO, "x", "m", name="oops")


def test_the_fields_become_attributes_of_the_opentelemetry_log_record(caplog):
    """What the Azure Monitor distro exports: the LoggingHandler it attaches turns the record's extra
    attributes into log attributes, which Application Insights shows as custom dimensions."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    logger = logging.getLogger("tests.telemetry.otel")
    logger.addHandler(handler)
    try:
        event = pool_event("failed", {"code": "AllocationTimedout", "message": "m"})
        telemetry.log_pool_outcome(logger, event)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    (exported,) = exporter.get_finished_logs()
    record = exported.log_record
    assert record.severity_text == "ERROR"
    assert {k: record.attributes[k] for k in ("event", "code", "poolId", "requestId", "instanceId")} == {
        "event": "pool-outcome",
        "code": "AllocationTimedout",
        "poolId": "pool-1",
        "requestId": "r1",
        "instanceId": "provision-r1",
    }


def test_the_runtime_switch_finds_the_azure_monitor_distro():
    """PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true makes azure-functions-runtime import and call it."""
    from azure.monitor.opentelemetry import configure_azure_monitor
    from azure_functions_runtime import otel

    assert callable(configure_azure_monitor)
    assert "configure_azure_monitor" in Path(otel.__file__).read_text(encoding="utf-8")
