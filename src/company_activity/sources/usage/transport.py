"""An httpx transport whose every socket operation honours a whole-request deadline and the run's stop.

httpx's timeouts are per operation: a server that drips one byte a second never trips a 30 s read
timeout. The client therefore sends each request inside :func:`guarded` (a deadline for the whole
request, connect to last body byte, and the run's :class:`~company_activity.stopping.StopSignal`), and
this transport's network streams read in slices of at most :data:`POLL_SECONDS`, checking both between
slices. A stop or the deadline raises out of the blocked read within a slice; httpcore then closes the
connection (the server sees it closed) and the exception reaches the client unchanged:
:class:`RequestDeadlineExceeded` (retried as a transient timeout) or
:class:`~company_activity.errors.RunStopped`.

Outside :func:`guarded` the streams behave exactly like httpcore's own.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
import typing
from collections.abc import Iterator

import httpcore
import httpx

from ...stopping import StopSignal

__all__ = ["POLL_SECONDS", "RequestDeadlineExceeded", "guarded", "guarded_transport"]

#: the longest a socket read blocks before the deadline and the stop are looked at again
POLL_SECONDS = 0.25


class RequestDeadlineExceeded(Exception):
    """The whole request (connect, send, every read of the response) took longer than its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the whole request took longer than {seconds:g} s")
        self.seconds = seconds


class _Guard:
    def __init__(self, seconds: float, stop: StopSignal) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.stop = stop

    def check(self) -> float:
        """Raise on a stop or past the deadline; else the seconds left."""
        self.stop.check()
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RequestDeadlineExceeded(self.seconds)
        return left

    def clamp(self, timeout: float | None) -> float:
        left = self.check()
        return left if timeout is None else min(timeout, left)


_GUARD: contextvars.ContextVar[_Guard | None] = contextvars.ContextVar("usage_request_guard", default=None)


@contextlib.contextmanager
def guarded(seconds: float, stop: StopSignal) -> Iterator[None]:
    """Bound every socket operation inside the block by ``seconds`` in all, and by ``stop``."""
    token = _GUARD.set(_Guard(seconds, stop))
    try:
        yield
    finally:
        _GUARD.reset(token)


class _GuardedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        guard = _GUARD.get()
        if guard is None:
            return self._inner.read(max_bytes, timeout)
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = min(POLL_SECONDS, guard.clamp(timeout))
            try:
                return self._inner.read(max_bytes, wait)
            except httpcore.ReadTimeout:
                if until is not None and time.monotonic() >= until:
                    raise  # httpx's own per-read timeout

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        guard = _GUARD.get()
        self._inner.write(buffer, timeout if guard is None else guard.clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        guard = _GUARD.get()
        if guard is not None:
            timeout = guard.clamp(timeout)
        return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        guard = _GUARD.get()
        if guard is not None:
            timeout = guard.clamp(timeout)
        return _GuardedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - the API is reached over TCP
        return _GuardedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - only used by httpcore's retries
        self._inner.sleep(seconds)


def guarded_transport(
    *, verify: ssl.SSLContext | bool = True, proxy: str | None = None
) -> httpx.HTTPTransport:
    """An :class:`httpx.HTTPTransport` (default limits) over the guarded network backend.

    ``verify``: the TLS context (default: the public roots); ``proxy``: an ``http(s)://`` proxy URL the
    requests go through (the tunnel's socket is guarded like a direct one).
    """
    transport = httpx.HTTPTransport(
        verify=verify,
        proxy=proxy,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0),
    )
    # httpcore's pools (ConnectionPool and its HTTPProxy subclass) open every socket through this backend
    transport._pool._network_backend = _GuardedBackend()
    return transport
