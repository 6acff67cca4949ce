"""SIGINT/SIGTERM for a one-off run: a prompt, clean stop through the run's :class:`StopSignal`.

:func:`handle_signals` blocks SIGINT and SIGTERM in the process and waits for them in a watcher thread, so a
signal is seen at once even while the main thread is inside a long SQL statement or waits on a socket (a
Python-level handler would only run after the statement returns). The first signal calls
``stop.request("SIGINT")`` (or ``"SIGTERM"``): every loop of the run checks the signal between units of work
and the registered abort hooks cancel what blocks (the statement in progress via :func:`abort_statement`;
the API client closes its connection). The day in progress is left not-complete, its transaction rolls
back, the lock is released, the run is recorded as ``interrupted``, and the exit status is 128 + the signal
number (130 for Ctrl-C, 143 for SIGTERM). A second signal stops at once (``KeyboardInterrupt`` in the main
thread); the open transaction still rolls back.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import Any

from .exits import EXIT_CODES
from .stopping import StopSignal

__all__ = ["EXIT_CODES", "abort_statement", "exit_now_if_stuck", "handle_signals", "watch_signals"]

log = logging.getLogger("company_activity.interrupts")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


Handler = Callable[[int, FrameType | None], Any]


@contextlib.contextmanager
def watch_signals(on_signal: Callable[[int], None], handlers: Mapping[int, Handler]) -> Iterator[None]:
    """For the duration (main thread only): SIGINT and SIGTERM blocked in the main thread (and in the
    threads it starts), each one read by a watcher thread that calls ``on_signal(signum)`` there.

    No Python signal handler runs for them in the main thread, where one runs between any two bytecodes
    and would deadlock on a lock the main thread holds (an event it is waiting on, say). ``handlers``
    become Python's handlers of those signals for the duration: they run only when the watcher calls
    ``_thread.interrupt_main(signum)`` to stop the main thread at once, and must take no lock."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    before = {s: signal.signal(s, handler) for s, handler in handlers.items()}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            info = signal.sigtimedwait(_SIGNALS, 0.1)
            if info is not None:
                on_signal(info.si_signo)

    watcher = threading.Thread(target=watch, name="signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(timeout=5)
        for s, handler in before.items():
            signal.signal(s, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def handle_signals(stop: StopSignal) -> contextlib.AbstractContextManager[None]:
    """Turn SIGINT/SIGTERM into ``stop.request(<name>)`` for the duration (main thread only)."""

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.requested:
            log.warning("%s again: stopping at once; the open transaction rolls back", name)
            _thread.interrupt_main()  # KeyboardInterrupt in the main thread
            return
        log.warning(
            "%s: stopping the run; the day in progress is left for the next run "
            "(send it again to stop at once)",
            name,
        )
        stop.request(name)

    # the second signal stops at once through Python's SIGINT handler (``interrupt_main``), which does
    # nothing while SIGINT is ignored, as a process started in the background by a script inherits it
    # (``nohup company-activity run &``, some schedulers): the default handler for the duration
    return watch_signals(on_signal, {signal.SIGINT: signal.default_int_handler})


def abort_statement(wh: Any) -> None:
    """Cancel the SQL statement in progress on ``wh`` (DuckDB ``interrupt``, PostgreSQL cancel)."""
    con = getattr(wh, "con", None)
    if con is None:
        return
    for name in ("interrupt", "cancel_safe", "cancel"):
        method = getattr(con, name, None)
        if callable(method):
            with contextlib.suppress(Exception):
                method()
            return


def exit_now_if_stuck(code: int, grace: float = 3.0) -> None:
    """After a stop: exit with ``code`` even if a run's worker thread is still blocked (e.g. on a socket).

    Waits up to ``grace`` seconds for the run's fetch and landing threads, then ends the process; does
    nothing when none is left (the caller then exits normally).
    """
    deadline = time.monotonic() + grace
    workers = [t for t in threading.enumerate() if _is_run_worker(t)]
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in workers):
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)


def _is_run_worker(thread: threading.Thread) -> bool:
    return not thread.daemon and thread.name.startswith(_WORKER_PREFIXES)


_WORKER_PREFIXES = ("fetch",)  # the day fetchers (pipeline._ingest_usage_days); landing threads are daemons
