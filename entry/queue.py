"""Intake of a request-queue message: base64 text (host.json `messageEncoding` is `none`, so the app decodes
it and can reject a message that is not base64 instead of the host poisoning it); `kind` picks the entry
(`grant-access`, or a pool request when absent or `create-pool`); an unknown kind or a body that is not
base64 is rejected by name like any other invalid request: a status entry and a `request-rejected` event."""

from __future__ import annotations

import asyncio
import base64
import binascii

import azure.durable_functions as df

from entry.access_grant import receive_access_grant
from entry.admission import record_rejection
from entry.pool_request import receive_pool_request
from entry.verdict import REJECTED, Verdict, identify
from provisioning.bounded_json import MAX_BODY_BYTES, JsonRejected, loads_bounded
from provisioning.grant_request import GRANT_KIND
from provisioning.settings import load_settings

POOL_KIND = "create-pool"


ENCODING_RULE = "must be base64 text of a UTF-8 JSON request (as queue clients for Azure Functions send it)"


def decode_message(content: bytes | str) -> bytes | None:
    """The bytes a base64 queue message carries, or None when it is not base64."""
    raw = content.encode("utf-8", "replace") if isinstance(content, str) else bytes(content)
    if len(raw) > MAX_BODY_BYTES * 2:
        return None
    try:
        return base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _kind(body: bytes) -> tuple[object, dict | None]:
    try:
        data = loads_bounded(body)
    except JsonRejected:
        return None, None
    return (data.get("kind"), data) if isinstance(data, dict) else (None, None)


async def receive_queue_message(
    client: df.DurableOrchestrationClient, content: bytes | str, message_id: str
) -> Verdict:
    body = decode_message(content)
    if body is None:
        error = {"field": "message", "rule": ENCODING_RULE, "message": f"message: {ENCODING_RULE}"}
        return await _reject(Verdict(REJECTED, None, f"message-{message_id}", errors=[error]), message_id)
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
    return await _reject(Verdict(REJECTED, pool_id, request_id, errors=[error]), message_id)


async def _reject(verdict: Verdict, message_id: str) -> Verdict:
    await asyncio.to_thread(record_rejection, load_settings(), verdict, message_id)
    return verdict
