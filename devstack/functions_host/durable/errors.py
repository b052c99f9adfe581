"""Errors the durable engine raises to its callers (the client API maps them to HTTP status codes)."""

from __future__ import annotations


class InstanceExistsError(Exception):
    """start_new with the id of an instance that is still Pending or Running (HTTP 409)."""


class InstanceFinishedError(Exception):
    """An operation that needs a live instance on one that already finished (HTTP 410)."""


class InstanceNotFinishedError(Exception):
    """An operation that needs a finished instance (purge) on one still running (HTTP 412)."""
