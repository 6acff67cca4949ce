"""Client-side rate limiting: requests paced evenly, slowed down by a 429, recovering gradually.

:class:`AdaptivePacer` sends one request every ``1 / rate`` seconds, never a burst: a server that enforces
its limit strictly (a request arriving sooner than ``1 / R`` after the previous one is refused) accepts a
client paced at the same ``R``. Its rate adapts, AIMD style: a ``429`` halves it (down to a floor), and
every successful request adds back a twentieth of the configured rate until the configured rate is
reached again. Each interval carries a small safety margin against the jitter of the network and of
thread scheduling (a request sent ``1 / R`` after the previous one can still arrive sooner); a ``429``
widens that margin (+1 %, up to 10 %), and it narrows back slowly (0.01 % per successful request), so a
client that keeps meeting a strict server at its own rate learns some of the margin its path needs (a
wider step was tried: on a busy machine, where the jitter reaches tens of milliseconds, the margin grew
to its cap and cost more than the 429s it avoided).

A server counts from when a request *arrived*, which the client does not see: a request held up on its
way (a busy server thread, a scheduling delay) is counted late, and the next one, sent on time, looks
early. The first request also pays for the connection, so the second slot is counted from the first
answer. Once the server has answered 429 (it is strict, and this path's jitter matters), each answer moves
the reference point too: a request answered ``rtt`` after it was sent, when the fastest answer so far took
``min_rtt``, may have been counted as late as ``received - min_rtt``, and the next slot is one interval
after the latest such point. Not before a 429: most of a slow answer's delay is usually spent after the
server counted the request, so this costs rate (on a busy machine, tens of percent); a server that never
answers 429 does not pay it.

Waits go through the run's :class:`~company_activity.stopping.StopSignal`, so a stop interrupts them.

:class:`OldestDayFirst` hands the pacer's slots to the waiting request of the oldest day first.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Protocol

from ...errors import ConfigError

__all__ = ["AdaptivePacer", "OldestDayFirst"]

#: the least margin on every interval (2 % + 2 ms), so that the jitter of the network and of thread
#: scheduling does not make a request arrive sooner than ``1 / R`` after the previous one at a strict server
_MARGIN_FRACTION = 0.02
_MARGIN_SECONDS = 0.002
#: how a 429 widens the margin, its cap, and how much each success narrows it back
_MARGIN_STEP = 0.01
_MARGIN_MAX = 0.10
_MARGIN_DECAY = 0.0001


class AdaptivePacer:
    """One request every ``1 / rate`` seconds (monotonic clock, under a lock); AIMD on 429s.

    ``decrease``: the factor applied to the rate on a 429; ``floor``: the least rate (requests/s);
    ``increase``: requests/s added back per successful request (default: a twentieth of ``rate``).
    """

    def __init__(
        self,
        rate: float,
        *,
        floor: float = 0.5,
        decrease: float = 0.5,
        increase: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ConfigError(f"api rate limit must be a positive number of requests per second, got {rate}")
        if not 0 < decrease < 1:
            raise ConfigError(f"api rate decrease factor must be between 0 and 1, got {decrease}")
        self.configured = float(rate)
        self.floor = min(float(floor), self.configured)
        self.decrease = decrease
        self.increase = increase if increase is not None else self.configured / 20
        self._rate = self.configured
        self._margin = _MARGIN_FRACTION
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None  # when the previous request was let through (or may have arrived)
        self._min_rtt: float | None = None  # the fastest answer seen
        self._strict = False  # a 429 came: count each slot from the latest possible arrival
        self.throttled_count = 0

    @property
    def rate(self) -> float:
        """The current rate (requests per second)."""
        with self._lock:
            return self._rate

    def interval(self) -> float:
        with self._lock:
            return self._interval()

    def _interval(self) -> float:
        return (1.0 + self._margin) / self._rate + _MARGIN_SECONDS

    def try_acquire(self, name: str = "", blocking: bool = True) -> bool:
        """Wait for the next slot (``blocking``) and take it; without blocking, take it only if it is due."""
        while True:
            with self._lock:
                now = self._clock()
                due = now if self._last is None else self._last + self._interval()
                if due <= now:
                    self._last = now
                    return True
                wait = due - now
            if not blocking:
                return False
            self._sleep(wait)  # then look again: a 429 meanwhile may have pushed the slot further

    def now(self) -> float:
        return self._clock()

    def _observe(self, sent: float | None, received: float | None) -> None:
        if sent is None or received is None or received < sent:
            return
        rtt = received - sent
        first = self._min_rtt is None
        self._min_rtt = rtt if self._min_rtt is None else min(self._min_rtt, rtt)
        if not (first or self._strict):
            return
        # the first answer says nothing about the path yet (it paid for the connection): count from it
        latest_arrival = received if first else received - self._min_rtt
        if self._last is None or latest_arrival > self._last:
            self._last = latest_arrival

    def on_success(self, sent: float | None = None, received: float | None = None) -> None:
        """A request went through: add back some rate (up to the configured one).

        ``sent``/``received``: when the request was let through and its answer came (this pacer's clock).
        """
        with self._lock:
            self._observe(sent, received)
            if self._rate < self.configured:
                self._rate = min(self.configured, self._rate + self.increase)
            if self._margin > _MARGIN_FRACTION:
                self._margin = max(_MARGIN_FRACTION, self._margin - _MARGIN_DECAY)

    def on_throttled(self, sent: float | None = None, received: float | None = None) -> None:
        """The server answered 429: slow down (multiplicative decrease, down to the floor)."""
        with self._lock:
            self._strict = True
            self._observe(sent, received)
            self._rate = max(self.floor, self._rate * self.decrease)
            self._margin = min(_MARGIN_MAX, self._margin + _MARGIN_STEP)
            self.throttled_count += 1

    def close(self) -> None:
        return None


class _Slots(Protocol):
    def try_acquire(self, name: str, blocking: bool) -> bool: ...

    def close(self) -> None: ...


class OldestDayFirst:
    """Hands the pacer's slots to the waiting request of the oldest day first.

    One thread at a time waits on the pacer; when it has its slot, the oldest day among the threads
    waiting goes next. A catch-up then completes its days oldest first, each day's staging load overlapping
    the fetching of the next (instead of every day finishing together at the end), and the days nearest to
    leaving the API's retention are captured first. Capacity the oldest day cannot use (while its request
    is on the wire) goes to younger days, so the limit stays saturated.
    """

    def __init__(self, limiter: _Slots) -> None:
        self._limiter = limiter
        self._cond = threading.Condition()
        self._waiting: list[tuple[date, int]] = []  # a heap of (day, arrival)
        self._arrivals = itertools.count()
        self._busy = False

    def acquire(self, day: date) -> None:
        ticket = (day, next(self._arrivals))
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            try:
                while self._busy or self._waiting[0] != ticket:
                    self._cond.wait()
            except BaseException:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._cond.notify_all()
                raise
            heapq.heappop(self._waiting)
            self._busy = True
        try:
            self._limiter.try_acquire("product-usage-api", blocking=True)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def close(self) -> None:
        self._limiter.close()
