"""The Batch service's own error codes as exceptions, each with its HTTP status and the service's JSON error
body."""

from __future__ import annotations

from typing import Any


class BatchServiceError(Exception):
    """An error the emulated service answers with: status, code, message and `values` (key/value details)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        values: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.values = list(values or [])
        self.headers = dict(headers or {})

    def to_body(self, request_id: str, time_text: str) -> dict[str, Any]:
        """The service's error body: {"code", "message": {"lang", "value"}, "values": [{"key", "value"}]}."""
        body: dict[str, Any] = {
            "code": self.code,
            "message": {
                "lang": "en-US",
                "value": f"{self.message}\nRequestId:{request_id}\nTime:{time_text}",
            },
        }
        if self.values:
            body["values"] = [{"key": k, "value": v} for k, v in self.values]
        return body


# --- request validation (400) -------------------------------------------------------------------


def invalid_property(name: str, value: Any, reason: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "InvalidPropertyValue",
        "The value provided for one of the properties in the request body is invalid.",
        [("PropertyName", name), ("PropertyValue", _text(value)), ("Reason", reason)],
    )


def missing_property(name: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "MissingRequiredProperty",
        "A required property was not specified in the request body.",
        [("PropertyName", name)],
    )


def invalid_request_body(reason: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "InvalidRequestBody",
        "The specified Request Body is not syntactically valid.",
        [("Reason", reason)],
    )


def invalid_query(name: str, value: str, reason: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "InvalidQueryParameterValue",
        "Value for one of the query parameters specified in the request URI is invalid.",
        [("QueryParameterName", name), ("QueryParameterValue", value), ("Reason", reason)],
    )


def missing_query(name: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "MissingRequiredQueryParameter",
        "A query parameter that's mandatory for this request is not specified.",
        [("QueryParameterName", name)],
    )


def unsupported_request_version(version: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "UnsupportedRequestVersion",
        "The specified request version is not supported.",
        [("QueryParameterName", "api-version"), ("QueryParameterValue", version)],
    )


# --- authentication (403) -----------------------------------------------------------------------


def authentication_failed(detail: str) -> BatchServiceError:
    return BatchServiceError(
        403,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header is "
        "correctly formed including the signature.",
        [("AuthenticationErrorDetail", detail)],
    )


# --- resources (404 / 409) ----------------------------------------------------------------------


def pool_not_found(pool_id: str) -> BatchServiceError:
    return BatchServiceError(404, "PoolNotFound", "The specified pool does not exist.", [("PoolId", pool_id)])


def pool_exists(pool_id: str) -> BatchServiceError:
    return BatchServiceError(409, "PoolExists", "The specified pool already exists.", [("PoolId", pool_id)])


def pool_being_deleted(pool_id: str) -> BatchServiceError:
    return BatchServiceError(
        409,
        "PoolBeingDeleted",
        "The specified pool has been marked for deletion and is being reclaimed.",
        [("PoolId", pool_id)],
    )


def pool_being_resized(pool_id: str) -> BatchServiceError:
    return BatchServiceError(
        409,
        "PoolBeingResized",
        "The operation is not permitted while the pool is being resized "
        "(its allocation state is not steady).",
        [("PoolId", pool_id)],
    )


def node_not_found(node_id: str) -> BatchServiceError:
    return BatchServiceError(404, "NodeNotFound", "The specified node does not exist.", [("NodeId", node_id)])


def node_user_exists(name: str) -> BatchServiceError:
    return BatchServiceError(
        409, "NodeUserExists", "The specified node user already exists.", [("UserName", name)]
    )


def node_user_not_found(name: str) -> BatchServiceError:
    return BatchServiceError(404, "NodeUserNotFound", "The node user does not exist.", [("UserName", name)])


def operation_invalid_for_state(
    reason: str, values: list[tuple[str, str]] | None = None
) -> BatchServiceError:
    return BatchServiceError(
        409,
        "OperationInvalidForCurrentState",
        "The specified operation is not valid for the current state of the resource.",
        [*(values or []), ("Reason", reason)],
    )


def node_state_unusable(node_id: str) -> BatchServiceError:
    return BatchServiceError(
        409,
        "NodeStateUnusable",
        "The operation cannot be performed because the node is unusable.",
        [("NodeId", node_id)],
    )


def unsupported_operation(method: str, path: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "UnsupportedOperation",
        "The requested operation is not supported by the emulator.",
        [("Method", method), ("Path", path)],
    )


def injected(status: int, operation: str, retry_after: float | None = None) -> BatchServiceError:
    """A fault-injected answer with the code the service uses for that status."""
    codes = {
        429: ("TooManyRequests", "The request was throttled; retry after the indicated time."),
        500: ("InternalServerError", "The server encountered an internal error. Please retry the request."),
        503: ("ServerBusy", "The server is currently unable to receive requests. Please retry your request."),
    }
    code, message = codes.get(status, ("InjectedFault", "The emulator injected this error."))
    headers = {"Retry-After": _retry_after_text(retry_after)} if retry_after is not None else {}
    return BatchServiceError(status, code, message, [("Operation", operation)], headers)


def _retry_after_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
