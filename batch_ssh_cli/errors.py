"""What can go wrong, as messages a person can act on and the documented exit codes."""

from __future__ import annotations

# Exit codes (documented in the README and in `batch-ssh --help`).
OK = 0
FAILED = 1  # the request ran and ended failed, partial or rejected; or no such node to log in to
USAGE = 2  # bad arguments or configuration (no URL or key, a config file others can read, no public key)
UNAUTHORIZED = 3  # 401/403: the function key is missing or wrong
NOT_FOUND = 4  # 404: no such pool, user or grant
INVALID = 5  # 400: the app rejected the request; each field is named
CONFLICT = 6  # 409: the app refused the change (it says why)
UNREACHABLE = 7  # the app did not answer, answered 5xx, or did not finish in time

EXIT_CODES = {
    OK: "success",
    FAILED: "the request ended failed, partial or rejected, or there is no such node",
    USAGE: "bad arguments or configuration",
    UNAUTHORIZED: "function key missing or wrong (401/403)",
    NOT_FOUND: "no such pool, user or grant (404)",
    INVALID: "the app rejected the request; the fields are named (400)",
    CONFLICT: "the app refused the change (409)",
    UNREACHABLE: "the app did not answer, failed (5xx) or did not finish in time",
}


class CliError(Exception):
    """An error to print (one message, maybe several detail lines) and the exit code to leave with."""

    def __init__(self, message: str, code: int = FAILED, details: list[str] | None = None, body=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or []
        self.body = body

    def as_json(self) -> dict:
        answer = {"error": self.message, "exitCode": self.code}
        if self.details:
            answer["details"] = self.details
        return answer
