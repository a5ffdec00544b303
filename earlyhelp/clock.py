"""The engine's one reading of the wall clock, and how long to wait before trying again.

`utc_now` is the default clock wherever a clock is injected (the runtime, the tools); the domain
never reads the clock itself. `next_backoff` is the one rule for waiting out something that is away
(the database, the broker): double the wait each time, never past MAX_BACKOFF_S.
"""
from __future__ import annotations

from datetime import datetime, timezone

MAX_BACKOFF_S = 5.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def next_backoff(seconds: float) -> float:
    """The wait after one of `seconds`: twice as long, at most MAX_BACKOFF_S."""
    return min(seconds * 2, MAX_BACKOFF_S)
