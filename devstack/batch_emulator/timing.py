"""Timing profiles for the node lifecycle: how long allocation, boot, removal and pool deletion take."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class TimingProfile:
    """Seconds each lifecycle phase takes; `jitter` spreads each delay by +/- that fraction per node."""

    allocation: float = 0.05  # pool resizing -> nodes appear in `creating`, allocation steady
    creating: float = 0.02  # creating -> starting (SSH endpoint assigned and listening)
    starting: float = 0.02  # starting -> waitingforstarttask (or idle without a start task)
    leaving: float = 0.02  # leavingpool -> node gone (resize down, remove nodes)
    pool_deletion: float = 0.05  # deleting -> pool gone (404), after its nodes are gone
    jitter: float = 0.0

    def delay(self, phase: str, rng: random.Random | None = None) -> float:
        base = float(getattr(self, phase))
        if self.jitter <= 0 or base <= 0:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


PROFILES: dict[str, TimingProfile] = {
    # Tests: every phase a few tens of milliseconds.
    "fast": TimingProfile(),
    # Close to what a real pool shows: minutes from create to idle.
    "realistic": TimingProfile(
        allocation=30.0, creating=45.0, starting=60.0, leaving=30.0, pool_deletion=60.0, jitter=0.25
    ),
}


def load_timing(spec: str) -> TimingProfile:
    """A named profile (`fast`, `realistic`) or a JSON file of {field: seconds} overriding the fast
    profile."""
    if spec in PROFILES:
        return PROFILES[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--timing: expected one of {', '.join(PROFILES)} or a JSON file, got {spec!r}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"--timing: {spec} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"--timing: {spec} must hold a JSON object")
    known = {f.name for f in fields(TimingProfile)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(
            f"--timing: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    for name, value in data.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(f"--timing: field {name!r} must be a number of seconds >= 0")
    return TimingProfile(**{**asdict(PROFILES["fast"]), **data})
