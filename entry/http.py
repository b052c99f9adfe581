"""HTTP answers shared by the entry points: JSON bodies, the request's origin, 202 with status URLs."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

POOL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
BAD_POOL_ID = "poolId: must be 1-64 letters, digits, hyphens or underscores"
BAD_USER = "user: must be a Linux user name (lower-case letters, digits, _ or -)"


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def accepted(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, instance_id: str, body: dict[str, Any]
) -> func.HttpResponse:
    """202 with the durable check-status URLs (and Location) plus `body`."""
    check = client.create_check_status_response(req, instance_id)
    merged = {**json.loads(check.get_body()), **body}
    return func.HttpResponse(
        json.dumps(merged), status_code=202, headers=dict(check.headers), mimetype="application/json"
    )
