"""Intake of a request-queue message: `kind` picks the entry (`grant-access`, or a pool request when absent
or `create-pool`); an unknown kind is rejected by name like any other invalid request."""

from __future__ import annotations

import asyncio
import json

import azure.durable_functions as df

from entry.access_grant import receive_access_grant
from entry.admission import record_rejection
from entry.pool_request import receive_pool_request
from entry.verdict import REJECTED, Verdict, identify
from provisioning.grant_request import GRANT_KIND
from provisioning.settings import load_settings

POOL_KIND = "create-pool"


def _kind(body: bytes) -> tuple[object, dict | None]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None, None
    return (data.get("kind"), data) if isinstance(data, dict) else (None, None)


async def receive_queue_message(
    client: df.DurableOrchestrationClient, body: bytes, message_id: str
) -> Verdict:
    kind, data = _kind(body)
    if kind == GRANT_KIND:
        return await receive_access_grant(
            client, body, pool_id=None, source="queue", base_url=None, message_id=message_id
        )
    if kind in (None, POOL_KIND):
        request = {k: v for k, v in data.items() if k != "kind"} if data is not None else body
        return await receive_pool_request(
            client, request, source="queue", base_url=None, message_id=message_id
        )
    pool_id, request_id = identify(body, message_id)
    rule = f'must be "{POOL_KIND}" (or left out) or "{GRANT_KIND}"'
    error = {"field": "kind", "rule": rule, "message": f"kind: {rule}"}
    verdict = Verdict(REJECTED, pool_id, request_id, errors=[error])
    await asyncio.to_thread(record_rejection, load_settings(), verdict, message_id)
    return verdict
