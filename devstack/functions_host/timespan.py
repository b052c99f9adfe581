"""Parse .NET TimeSpan text ("[d.]hh:mm:ss[.fffffff]"), the format host.json and timer schedules use."""

from __future__ import annotations

import re
from datetime import timedelta

_TIMESPAN = re.compile(
    r"^(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{2}):(?P<seconds>\d{2})(?:\.(?P<fraction>\d{1,7}))?$"
)


def parse_timespan(text: str) -> timedelta:
    """The timedelta for a TimeSpan string such as "00:00:05" or "1.02:00:00.5"; ValueError otherwise."""
    match = _TIMESPAN.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a TimeSpan of the form [d.]hh:mm:ss[.fffffff]")
    hours, minutes, seconds = int(match["hours"]), int(match["minutes"]), int(match["seconds"])
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a TimeSpan: hours must be 0-23, minutes and seconds 0-59")
    fraction = match["fraction"] or "0"
    microseconds = int(fraction.ljust(7, "0")) // 10
    return timedelta(
        days=int(match["days"] or 0), hours=hours, minutes=minutes, seconds=seconds, microseconds=microseconds
    )


def looks_like_timespan(text: str) -> bool:
    return bool(_TIMESPAN.match(text.strip()))
