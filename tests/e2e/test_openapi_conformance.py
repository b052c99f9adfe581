"""schemathesis runs schemas/openapi.json against the app on the local host: no 5xx, and every status code,
content type, header and body is one the document describes. The app also serves the committed document at
GET /api/openapi.json without a key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO_ROOT

DOCUMENT = REPO_ROOT / "schemas" / "openapi.json"
SCHEMATHESIS = Path(sys.executable).parent / "st"
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]
# Bounded so the run stays well under a few minutes on 2 cores; a fixed seed makes a failure reproducible.
MAX_EXAMPLES = 50
SEED = 20261130
# The function key reaches schemathesis through the environment, not its argv or output.
CONFIG = """headers = { "x-functions-key" = "${SCHEMATHESIS_FUNCTION_KEY}" }
"""


def test_the_app_serves_its_document_without_a_key(stack):
    status, headers, served = stack.host.request("GET", "/api/openapi.json", key=False)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert served == json.loads(DOCUMENT.read_text())


def test_every_answer_of_the_running_app_conforms_to_the_document(stack, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    argv = [
        str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run", str(DOCUMENT),
        "--url", stack.host.url, "--checks", ",".join(CHECKS), "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--generation-database", "none", "--generation-with-security-parameters", "false",
        "--request-timeout", "60",
        "--report", "ndjson", "--report-ndjson-path", str(tmp_path / "events.ndjson"),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_FUNCTION_KEY": stack.host.key}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    output = result.stdout + result.stderr
    assert stack.host.key not in output
    assert result.returncode == 0, output
    answers = answers_by_operation(tmp_path / "events.ndjson")
    documented = {
        f"{method.upper()} {path}" for path, item in json.loads(DOCUMENT.read_text())["paths"].items()
        for method in item if method != "parameters"
    }  # fmt: skip
    assert set(answers) == documented  # every operation was called
    for operation, statuses in answers.items():
        assert all(status < 500 for status in statuses), (operation, sorted(statuses))
        assert set(statuses) - {401}, f"{operation}: only 401s, the key never reached the app"
    assert 400 in answers["POST /api/pools"] and 200 in answers["GET /api/pools/{poolId}/connections"]
    assert sum(len(statuses) for statuses in answers.values()) >= 10 * len(documented)


def answers_by_operation(report: Path) -> dict[str, list[int]]:
    """ "METHOD /path" -> the status of every answer to a call of that operation (not the probes with other
    methods that schemathesis files under it), from its ndjson event report."""
    answers: dict[str, list[int]] = {}
    for line in report.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        for interaction in recorder.get("interactions", {}).values():
            response = interaction.get("response")
            if response and interaction["request"]["method"] == recorder["label"].split()[0]:
                answers.setdefault(recorder["label"], []).append(response["status_code"])
    return answers
