"""Retries of transient failures: a :mod:`tenacity` loop with full-jitter backoff and a run-wide budget.

``Retry-After`` is honoured (floored and capped); every wait goes through the ``sleep`` given (the run's
:meth:`StopSignal.sleep <company_activity.stopping.StopSignal.sleep>` by default), so a stop interrupts a
wait at once.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import NoReturn, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from ...errors import ApiTransientError, ApiUnavailable, ConfigError

__all__ = ["Retrier", "RetryPolicy", "parse_retry_after"]

log = logging.getLogger("company_activity.usage_api")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried (defaults = the documented settings' defaults)."""

    max_attempts: int = 6  # attempts per request
    backoff_initial: float = 0.5  # full jitter: uniform(0, min(backoff_max, backoff_initial * 2**n))
    backoff_max: float = 30.0  # cap on any single wait (also caps Retry-After)
    retry_after_floor: float = 0.2  # least wait after a 429
    budget_seconds: float = 900.0  # total retry waiting for the client's lifetime (one run)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"api max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("backoff_initial", "retry_after_floor"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"api {name} must be a finite number >= 0, got {value}")
        for name in ("backoff_max", "budget_seconds"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"api {name} must be a finite number > 0, got {value}")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class _RetryRun:
    """Book-keeping of one request's retry loop."""

    started: float
    waited: float = 0.0
    reason: str = ""


class Retrier:
    """Runs one request's attempts until one returns; the waiting budget is shared by every request."""

    def __init__(self, policy: RetryPolicy, *, sleep: Callable[[float], None], rng: random.Random) -> None:
        self.policy = policy
        self._sleep = sleep
        self._rng = rng
        self._lock = threading.Lock()
        self._seconds_used = 0.0

    @property
    def seconds_used(self) -> float:
        with self._lock:
            return self._seconds_used

    def run(self, day: date, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it returns, retrying ApiTransientError within attempts and budget."""
        run = _RetryRun(started=time.monotonic())
        retrying = Retrying(
            sleep=self._sleep,
            retry=retry_if_exception_type(ApiTransientError),
            wait=self._wait,
            stop=partial(self._stop, run),
            before_sleep=partial(self._log_retry, day, what),
            retry_error_callback=partial(self._give_up, run, day, what),
        )
        return retrying(attempt)

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After (floored, capped) when the server sent one, else full-jitter exponential backoff."""
        policy = self.policy
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ApiTransientError) and exc.retry_after is not None:
            return min(policy.backoff_max, max(exc.retry_after, policy.retry_after_floor))
        ceiling = min(policy.backoff_max, policy.backoff_initial * 2.0 ** min(state.attempt_number - 1, 60))
        with self._lock:
            wait = self._rng.uniform(0.0, ceiling)
        if isinstance(exc, ApiTransientError) and exc.status == 429:
            wait = min(policy.backoff_max, max(wait, policy.retry_after_floor))
        return wait

    def _stop(self, run: _RetryRun, state: RetryCallState) -> bool:
        """Stop after ``max_attempts`` or when the next wait would overrun the budget; else book the wait."""
        policy = self.policy
        if state.attempt_number >= policy.max_attempts:
            run.reason = f"gave up after {state.attempt_number} attempts"
            return True
        wait = state.upcoming_sleep
        with self._lock:
            used = self._seconds_used
            if used + wait > policy.budget_seconds:
                run.reason = (
                    f"the retry budget of {policy.budget_seconds:g} s for this run is exhausted "
                    f"({used:.1f} s used, the next wait would be {wait:.1f} s)"
                )
                return True
            self._seconds_used = used + wait
        run.waited += wait
        return False

    def _log_retry(self, day: date, what: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "product-usage API: %s (attempt %d of %d); retrying %s %s in %.2f s",
            exc,
            state.attempt_number,
            self.policy.max_attempts,
            day,
            what,
            state.upcoming_sleep,
            extra={
                "api_status": getattr(exc, "status", None),
                "retry_wait": state.upcoming_sleep,
                "day": day.isoformat(),
            },
        )

    def _give_up(self, run: _RetryRun, day: date, what: str, state: RetryCallState) -> NoReturn:
        exc = state.outcome.exception() if state.outcome is not None else None
        status = exc.status if isinstance(exc, ApiTransientError) else None
        elapsed = time.monotonic() - run.started
        raise ApiUnavailable(
            f"product-usage API unavailable for {day} ({what}): {run.reason}; last error: {exc}; "
            f"{state.attempt_number} attempt(s), {run.waited:.1f} s of retry waiting, {elapsed:.1f} s in all",
            status=status,
            day=day,
        ) from exc
