"""Parsing of durations (ISO 8601 such as `PT30M`, or plain seconds) and of absolute UTC timestamps."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import isodate

MAX_DURATION_SECONDS = 100 * 366 * 86400  # longer is no setting or request anyone means (and overflows soon)


class DurationError(ValueError):
    """A text that is neither an ISO 8601 duration nor a number of seconds."""


def parse_duration(text: str | int | float) -> timedelta:
    """`PT30M`, `P1D`, `PT0.5S` or a number of seconds (`"90"`, `90`) -> a positive timedelta.

    Years and months are refused because their length is not fixed.
    """
    if isinstance(text, bool):
        raise DurationError("must be an ISO 8601 duration (e.g. PT30M) or a number of seconds")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        value = text.strip()
        try:
            seconds = float(value)
        except ValueError:
            seconds = None
        if seconds is None:
            try:
                parsed = isodate.parse_duration(value)
            except (isodate.ISO8601Error, ValueError) as exc:
                raise DurationError(
                    "must be an ISO 8601 duration (e.g. PT30M) or a number of seconds"
                ) from exc
            if not isinstance(parsed, timedelta):
                raise DurationError("must not use years or months (their length varies): use days, e.g. P30D")
            seconds = parsed.total_seconds()
    if not math.isfinite(seconds) or seconds > MAX_DURATION_SECONDS:
        raise DurationError("must be at most 100 years")
    if seconds <= 0:
        raise DurationError("must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """A timedelta as an ISO 8601 duration (`PT1H30M`)."""
    return isodate.duration_isoformat(value)


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp with an explicit offset (`2030-01-02T03:04:05Z`) -> an aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise DurationError("must be an ISO 8601 timestamp such as 2030-01-02T03:04:05Z") from exc
    if parsed.tzinfo is None:
        raise DurationError("must carry a time zone offset (e.g. a trailing Z for UTC)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past the last representable UTC time
        raise DurationError("must be a time before the year 9999") from None


def format_timestamp(value: datetime) -> str:
    """An aware datetime as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds)."""
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
