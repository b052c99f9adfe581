"""SharedKey verification as the Batch service does it: rebuild the signing string from the request as it was
received (the headers actually sent; an absent Content-Length is an empty value, not "0"), HMAC-SHA256 it with
the account key and compare with the Authorization header in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs

from devstack.batch_emulator import exceptions as errors

# Headers whose values enter the signature, in this order (the service's list).
SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)
MAX_CLOCK_SKEW = timedelta(minutes=15)


def string_to_sign(
    method: str, raw_path: str, query: str, headers: Iterable[tuple[str, str]], account: str
) -> str:
    """The SharedKey signing string for a request as received: `raw_path` percent-encoded as sent, `query`
    undecoded, `headers` exactly those on the wire. A header that was not sent (or was sent empty) contributes
    an empty line; nothing is filled in the way one client or another does before sending (the Python SDK
    signs "0" for a bodiless DELETE and also sends `Content-Length: 0`; the JavaScript SDK sends no
    Content-Length and signs an empty value: both are what was received)."""
    lowered: dict[str, str] = {}
    ocp: list[tuple[str, str]] = []
    for name, value in headers:
        if not value:
            continue
        key = name.lower()
        lowered[key] = value
        if key.startswith("ocp-"):
            ocp.append((key, value))
    text = method.upper() + "\n"
    text += "\n".join(lowered.get(name, "") for name in SIGNED_HEADERS) + "\n"
    for name, value in sorted(ocp):
        text += f"{name}:{value}\n"
    text += f"/{account}{raw_path}"
    params = parse_qs(query)
    for name in sorted(params):
        value = params[name][0]
        if value:
            text += f"\n{name}:{value}"
    return text


def sign(text: str, key: str) -> str:
    """base64(HMAC-SHA256(base64decode(key), utf-8 text))."""
    digest = hmac.new(base64.b64decode(key), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_request(
    *,
    method: str,
    raw_path: str,
    query: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    account: str,
    key: str,
    now: datetime | None = None,
) -> None:
    """Raise the service's 403 AuthenticationFailed unless the request carries a valid, fresh SharedKey
    signature."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    by_name = {name.lower(): value for name, value in pairs}
    authorization = by_name.get("authorization", "")
    scheme, _, credential = authorization.partition(" ")
    if not authorization:
        raise errors.authentication_failed("The Authorization header is missing.")
    if scheme != "SharedKey" or ":" not in credential:
        raise errors.authentication_failed(
            "The Authorization header must have the form 'SharedKey <account>:<signature>'."
        )
    claimed_account, _, signature = credential.partition(":")
    if claimed_account != account:
        raise errors.authentication_failed(
            f"The account name in the Authorization header is not '{account}'."
        )
    _check_date(by_name.get("ocp-date") or by_name.get("date"), now or datetime.now(UTC))
    expected = sign(string_to_sign(method, raw_path, query, pairs, account), key)
    try:
        received = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        received = b""
    if not hmac.compare_digest(received, base64.b64decode(expected)):
        raise errors.authentication_failed(
            "The MAC signature found in the HTTP request is not the same as any computed signature."
        )


def _check_date(value: str | None, now: datetime) -> None:
    if not value:
        raise errors.authentication_failed("The request has neither an ocp-date nor a Date header.")
    try:
        sent = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        sent = None
    if sent is None:
        raise errors.authentication_failed("The ocp-date header is not a valid RFC 1123 date.")
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    if abs(now - sent) > MAX_CLOCK_SKEW:
        raise errors.authentication_failed(
            "The request time in the ocp-date header is more than 15 minutes away from the server time."
        )
