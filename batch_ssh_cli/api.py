"""The app's HTTP API over urllib: one call per route, the function key in the x-functions-key header, and
every non-2xx answer turned into a clear error with its exit code (401 -> "function key missing or wrong",
404, 400 listing the named fields, 409, 5xx). Durable status URLs carry a key of their own: they are never
printed (see `public_answer`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from batch_ssh_cli import __version__
from batch_ssh_cli.config import Settings
from batch_ssh_cli.errors import CONFLICT, INVALID, NOT_FOUND, UNAUTHORIZED, UNREACHABLE, CliError

KEY_HEADER = "x-functions-key"
SECRET_QUERY = {"code", "sig"}


def without_secrets(url: str) -> str:
    """The URL with its `code=` (a key) left out."""
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in SECRET_QUERY
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def public_answer(answer: Any) -> Any:
    """A 202 answer as it may be printed: every URL without its key."""
    if isinstance(answer, dict):
        return {k: public_answer(v) for k, v in answer.items()}
    if isinstance(answer, list):
        return [public_answer(v) for v in answer]
    if isinstance(answer, str) and answer.startswith(("http://", "https://")):
        return without_secrets(answer)
    return answer


def _field_lines(body: Any) -> list[str]:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        f"{e.get('field', '?')}: {e.get('rule') or e.get('message', '')}"
        for e in errors
        if isinstance(e, dict)
    ]


def _message(body: Any) -> str:
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            return body["error"]
        if isinstance(body.get("error"), dict):
            return str(body["error"].get("message") or body["error"])
    return str(body).strip()[:300] if body else ""


def error_for(status: int, body: Any, what: str) -> CliError:
    """The CliError for a non-2xx answer to `what` (e.g. "GET /api/pools/p1")."""
    if status in (401, 403):
        return CliError(f"function key missing or wrong ({status} from {what})", UNAUTHORIZED, body=body)
    if status == 404:
        return CliError(_message(body) or f"not found: {what}", NOT_FOUND, body=body)
    if status == 400:
        lines = _field_lines(body)
        message = "the app rejected the request" + (":" if lines else f": {_message(body)}")
        return CliError(message, INVALID, lines, body=body)
    if status == 409:
        lines = _field_lines(body)
        return CliError(_message(body) or f"conflict ({what})", CONFLICT, lines, body=body)
    return CliError(f"{what} answered {status}: {_message(body)}", UNREACHABLE, body=body)


class AppClient:
    """The app's routes. `settings.url` is the app's base URL (with or without a trailing /api)."""

    def __init__(self, settings: Settings, timeout: float = 60):
        base = settings.url.rstrip("/")
        self.base = base.removesuffix("/api")
        self.key = settings.key
        self.timeout = timeout

    def call(
        self, method: str, path: str, body: Any = None, *, accept: tuple[int, ...] = ()
    ) -> tuple[int, Any]:
        """(status, parsed body) for a 2xx answer or a status in `accept`; a CliError otherwise."""
        what = f"{method} {path}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "User-Agent": f"batch-ssh/{__version__}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.key:
            headers[KEY_HEADER] = self.key
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw, content_type = (
                    response.status,
                    response.read(),
                    response.headers.get_content_type(),
                )
        except urllib.error.HTTPError as error:
            with error:
                status, raw, content_type = error.code, error.read(), error.headers.get_content_type()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise CliError(f"cannot reach the app at {self.base}: {reason}", UNREACHABLE) from None
        parsed: Any = raw.decode("utf-8", errors="replace")
        if content_type == "application/json" and raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                pass
        if 200 <= status < 300 or status in accept:
            return status, parsed
        raise error_for(status, parsed, what)

    # ---- routes -------------------------------------------------------------------------------------------

    def request_pool(self, body: dict) -> dict:
        return self.call("POST", "/api/pools", body)[1]

    def grant(self, pool_id: str, body: dict) -> dict:
        return self.call("POST", f"/api/pools/{_seg(pool_id)}/access", body)[1]

    def pool(self, pool_id: str) -> dict:
        return self.call("GET", f"/api/pools/{_seg(pool_id)}")[1]

    def pools(self) -> dict:
        return self.call("GET", "/api/pools")[1]

    def connections(self, pool_id: str, fmt: str = "json") -> Any:
        suffix = "" if fmt == "json" else f"?format={quote(fmt)}"
        return self.call("GET", f"/api/pools/{_seg(pool_id)}/connections{suffix}")[1]

    def user_access(self, user: str) -> dict:
        return self.call("GET", f"/api/users/{_seg(user)}/access")[1]

    def revoke(self, pool_id: str, user: str) -> tuple[int, Any]:
        return self.call("DELETE", f"/api/pools/{_seg(pool_id)}/users/{_seg(user)}")

    def delete_pool(self, pool_id: str) -> Any:
        return self.call("DELETE", f"/api/pools/{_seg(pool_id)}")[1]


def _seg(value: str) -> str:
    return quote(value, safe="")
