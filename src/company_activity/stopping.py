"""Cooperative stopping: one :class:`StopSignal` per run, shared by every thread of the run.

The CLI (or the scheduler) turns SIGINT/SIGTERM into :meth:`StopSignal.request`; the run's deadline is
given when the signal is made. Every loop that can run long (pages of a day, days of a run, retry waits,
rate-limit waits, lake writes of a day) calls :meth:`StopSignal.check` between units of work and waits with
:meth:`StopSignal.sleep` instead of ``time.sleep``, so a stop is honoured within about a second wherever
the run is. ``check`` raises :class:`~company_activity.errors.RunInterrupted` after a request and
:class:`~company_activity.errors.RunDeadlineExceeded` once the deadline has passed.

Blocking I/O that cannot poll (a socket read) registers a callback with :meth:`StopSignal.on_stop` that
aborts it (closes the connection) when a stop is requested.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from .errors import RunDeadlineExceeded, RunInterrupted

__all__ = ["NEVER", "StopSignal"]

_clock = time.monotonic


class StopSignal:
    """A stop request and an optional deadline (``deadline_seconds`` from now, monotonic clock)."""

    def __init__(self, *, deadline_seconds: float | None = None, clock: Callable[[], float] = _clock) -> None:
        self._event = threading.Event()
        self._clock = clock
        self._deadline = None if deadline_seconds is None else clock() + deadline_seconds
        self._deadline_seconds = deadline_seconds
        self._reason = ""
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    # -- asking for a stop ----------------------------------------------------------------------------
    def request(self, reason: str = "interrupted") -> None:
        """Ask every part of the run to stop (idempotent; safe from a signal handler's thread)."""
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:  # noqa: SIM105 - a comment says why the error is dropped
                callback()
            except Exception:  # an abort hook must not stop the others
                pass

    def on_stop(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when a stop is requested (at once if it already was); returns an unregister."""
        with self._lock:
            already = self._event.is_set()
            if not already:
                self._callbacks.append(callback)
        if already:
            callback()

        def unregister() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unregister

    # -- honouring it ----------------------------------------------------------------------------------
    @property
    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        return self._reason

    def remaining(self) -> float | None:
        """Seconds until the deadline (``None``: no deadline; never negative)."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - self._clock())

    def expired(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def check(self) -> None:
        """Raise RunInterrupted after a request, RunDeadlineExceeded past the deadline; else return."""
        if self._event.is_set():
            raise RunInterrupted(f"run stopped: {self._reason}")
        if self.expired():
            raise RunDeadlineExceeded(f"run deadline of {self._deadline_seconds:g} s passed")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless a stop comes first (then raise as :meth:`check` does)."""
        self.check()
        remaining = self.remaining()
        wait = seconds if remaining is None else min(seconds, remaining)
        if wait > 0:
            self._event.wait(wait)
        self.check()


#: a signal nobody sets and without a deadline: the default for callers that do not stop
NEVER = StopSignal()
