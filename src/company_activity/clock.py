"""The one clock helper: now in UTC.

The warehouse stores naive UTC timestamps (``utcnow()``); the scheduler computes cron times with an aware
one (``utcnow(aware=True)``). Code that needs a test clock takes a ``Callable[[], datetime]`` seam instead
of calling this directly.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow(*, aware: bool = False) -> datetime:
    """Now in UTC: naive (as the warehouse stores it) unless ``aware``."""
    now = datetime.now(UTC)
    return now if aware else now.replace(tzinfo=None)
