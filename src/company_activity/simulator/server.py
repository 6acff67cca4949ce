"""A real HTTP server implementing the product-usage API v1 (``product-usage-api.md``) over synthetic data.

Standard library only (``http.server``, HTTP/1.1 with keep-alive, ``Content-Length`` always set). Pages are
stateless: the opaque cursor is URL-safe base64 of ``"<date>:<position>:<emitted>"``, where *position* is
the company index (or the position in an override list) to resume at and *emitted* how many of that
company's records were already served (a duplicated record can straddle two pages). A page therefore costs
O(page), whatever the population size.

Faults are drawn from ``random.Random(seed)`` under a lock (deterministic for a sequential client); which
record is duplicated, conflicting or bad is a pure function of the seed and the day.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import random
import re
import secrets
import signal
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import orjson

from .data import SEASONALITIES, SyntheticData, UsageRecord, _mix

__all__ = ["SimulatorOptions", "SimulatorServer", "SimulatorStats", "serve"]

TOKEN_PATH = "/oauth/token"
USAGE_PATH = "/v1/usage/daily"
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
RETRY_AFTER_STYLES = ("seconds", "http-date", "zero")
_SERVER_ERRORS = (500, 502, 503, 504)
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT_RE = re.compile(r"\d{1,7}")
_POSITION_RE = re.compile(r"\d{1,12}")
_M64 = (1 << 64) - 1
_SALT_DUPLICATE = 0x0D0B1E
_SALT_CONFLICT = 0xC0F11C7
_SALT_BAD = 0xBAD
_SALT_OVERSIZED = 0x0B16
#: the length of a company id served by ``oversized_id_days``: over the pipeline's 256-character cap
OVERSIZED_ID_LENGTH = 300
_PLANS = ("free", "starter", "pro", "enterprise")
_REGIONS = ("eu", "us", "apac")


@dataclass
class SimulatorOptions:
    """What the simulator serves and how badly it behaves. Read at every request: changes apply at once."""

    seed: int = 7
    companies: int = 200
    epoch: date = date(2026, 1, 1)
    #: what the weekday seasonality changes: "companies" (fewer active at weekends) or "users" (the
    #: demo's world: the user counts only, so the daily record count stays level); see data.py
    seasonality: str = "companies"
    today: date | None = None  # None: the UTC clock; days >= today answer 409 date_not_final
    retention_days: int = 30  # days < today - retention_days answer 404 date_not_available
    not_final_days: frozenset[date] = frozenset()  # extra days that answer 409
    client_id: str | None = "demo-client"  # OAuth2 client credentials mode when id and secret are set
    client_secret: str | None = "demo-secret"
    api_key: str | None = "demo-key"  # API-key mode when set
    token_ttl: float = 3600.0  # seconds; expired tokens answer 401 invalid_token
    revoke_rate: float = 0.0  # probability that a request with a valid token finds it revoked (401)
    rate_limit: float | None = None  # requests/second per client; over it: 429 rate_limited
    #: strict (no burst): a request sooner than 1/rate_limit s after the last accepted one gets a 429 with
    #: Retry-After: 1 (else a token bucket allowing bursts of max(1, rate_limit))
    rate_limit_strict: bool = False
    error_rate: float = 0.0  # probability of a 500/502/503/504
    rate_limited_rate: float = 0.0  # probability of a spurious 429
    retry_after: str = "seconds"  # Retry-After style of 429s: "seconds" | "http-date" | "zero"
    retry_after_seconds: float = 1.0  # Retry-After of spurious 429s (rounded up to whole seconds)
    truncate_rate: float = 0.0  # probability that a 200 body is cut short
    reset_rate: float = 0.0  # probability that the connection is closed without a response
    latency: float = 0.0  # seconds added to every usage request
    drip_interval: float = 0.0  # > 0: a usage 200 body is sent one byte per drip_interval seconds
    endless_cursor: bool = False  # after the last record, pages of no records whose next_cursor never ends
    drift_fields: bool = False  # add unlisted fields ("plan", "region") to every record
    duplicate_rate: float = 0.0  # probability that a record is repeated identically
    conflict_days: frozenset[date] = frozenset()  # days on which one company gets two different records
    bad_record_days: frozenset[date] = frozenset()  # days on which one record is invalid
    #: days on which ``oversized_id_count`` records carry a company id of OVERSIZED_ID_LENGTH characters
    #: (valid under the API's contract, over the pipeline's own cap)
    oversized_id_days: frozenset[date] = frozenset()
    oversized_id_count: int = 1
    overrides: dict[date, list[UsageRecord]] = field(default_factory=dict)  # replace a day's records

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first option that makes no sense."""
        if self.companies < 0:
            raise ValueError("companies must be >= 0")
        if self.seasonality not in SEASONALITIES:
            raise ValueError(f"seasonality must be one of {', '.join(SEASONALITIES)}")
        if self.retention_days < 0:
            raise ValueError("retention_days must be >= 0")
        if self.oversized_id_count < 0:
            raise ValueError("oversized_id_count must be >= 0")
        if self.token_ttl <= 0:
            raise ValueError("token_ttl must be > 0")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be > 0")
        if self.retry_after not in RETRY_AFTER_STYLES:
            raise ValueError(f"retry_after must be one of {', '.join(RETRY_AFTER_STYLES)}")
        if self.retry_after_seconds < 0 or self.latency < 0 or self.drip_interval < 0:
            raise ValueError("retry_after_seconds, latency and drip_interval must be >= 0")
        for name in (
            "revoke_rate",
            "error_rate",
            "rate_limited_rate",
            "truncate_rate",
            "reset_rate",
            "duplicate_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not self.oauth_enabled and not self.api_key:
            raise ValueError("no authentication configured: set client_id and client_secret, or api_key")

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.client_id) and bool(self.client_secret)


class SimulatorStats:
    """Thread-safe counters of what the simulator answered (tests assert on them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_status: Counter[int] = Counter()
        self._by_path: Counter[str] = Counter()
        self._by_path_status: Counter[tuple[str, int]] = Counter()
        self._tokens_issued = 0
        self._resets = 0
        self._truncated = 0
        self._aborted = 0

    def record(self, path: str, status: int) -> None:
        with self._lock:
            self._by_status[status] += 1
            self._by_path[path] += 1
            self._by_path_status[(path, status)] += 1

    def record_reset(self, path: str) -> None:
        with self._lock:
            self._resets += 1
            self._by_path[path] += 1

    def record_aborted(self, path: str, status: int) -> None:
        """An answer recorded as served that the client left before its end: counted as aborted instead."""
        with self._lock:
            self._aborted += 1
            self._by_status[status] -= 1
            self._by_path[path] -= 1
            self._by_path_status[(path, status)] -= 1

    def record_truncated(self) -> None:
        with self._lock:
            self._truncated += 1

    def record_token(self) -> None:
        with self._lock:
            self._tokens_issued += 1

    def count(self, *, status: int | None = None, path: str | None = None) -> int:
        """Responses with that status and/or on that path (resets count on their path only)."""
        with self._lock:
            if status is None and path is None:
                return sum(self._by_path.values())
            if path is None:
                return self._by_status[cast(int, status)]
            if status is None:
                return self._by_path[path]
            return self._by_path_status[(path, status)]

    @property
    def by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._by_status)

    @property
    def by_path(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_path)

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._tokens_issued

    @property
    def resets(self) -> int:
        with self._lock:
            return self._resets

    @property
    def aborted(self) -> int:
        """Responses the client closed the connection on before their body was all sent."""
        with self._lock:
            return self._aborted

    @property
    def truncated(self) -> int:
        with self._lock:
            return self._truncated

    @property
    def requests(self) -> int:
        """Every request answered or reset."""
        with self._lock:
            return sum(self._by_path.values())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "by_status": dict(self._by_status),
                "by_path": dict(self._by_path),
                "tokens_issued": self._tokens_issued,
                "resets": self._resets,
                "truncated": self._truncated,
                "aborted": self._aborted,
            }

    def reset(self) -> None:
        with self._lock:
            self._by_status.clear()
            self._by_path.clear()
            self._by_path_status.clear()
            self._tokens_issued = self._resets = self._truncated = self._aborted = 0


class _Reply(Exception):
    """Raised inside a request to answer with an error."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = headers or {}


class _Reset(Exception):
    """Raised inside a request to drop the connection without an answer."""


class _Bucket:
    """A token bucket: ``rate`` requests per second, bursts of up to ``max(1, rate)``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        now = time.monotonic() if now is None else max(now, self.stamp)
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, max(0.0, (1.0 - self.tokens) / self.rate)
        return False, (1.0 - self.tokens) / self.rate


class _Strict:
    """No burst: a request is accepted only ``1 / rate`` seconds or more after the last accepted one."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.last: float | None = None
        self.tokens = 1.0  # for the X-RateLimit-Remaining header

    def take(self, now: float | None = None) -> tuple[bool, float]:
        now = time.monotonic() if now is None else now
        interval = 1.0 / self.rate
        if self.last is not None and now - self.last < interval:
            self.tokens = 0.0
            return False, 1.0
        self.last = now
        self.tokens = 0.0
        return True, interval


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: SimulatorServer) -> None:
        self.sim = sim
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Close kept-alive connections so that nothing is served after stop()."""
        with self._open_lock:
            sockets = list(self._open)
            self._open.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "product-usage-simulator/1"
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are closed after this many seconds

    @property
    def sim(self) -> SimulatorServer:
        return cast(_HTTPServer, self.server).sim

    def log_message(self, format: str, *args: Any) -> None:
        return

    def parse_request(self) -> bool:
        self.arrived = time.monotonic()  # when the request line was read: what a strict limit measures
        return super().parse_request()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        body = self._read_body()
        try:
            if path == USAGE_PATH:
                if method != "GET":
                    raise _Reply(405, "method_not_allowed", {"Allow": "GET"})
                status, payload, headers = self.sim._handle_usage(parts.query, self.headers, self.arrived)
            elif path == TOKEN_PATH:
                if method != "POST":
                    raise _Reply(405, "method_not_allowed", {"Allow": "POST"})
                status, payload, headers = self.sim._handle_token(body, self.headers)
            else:
                raise _Reply(404, "not_found")
        except _Reset:
            self.sim.stats.record_reset(path)
            self._reset_connection()
            return
        except _Reply as reply:
            status, headers = reply.status, reply.headers
            payload = orjson.dumps({"error": reply.error})
        except Exception:  # a bug in the simulator: answer like a real server would
            status, headers, payload = 500, {}, orjson.dumps({"error": "internal_error"})
        if status == 200 and path == USAGE_PATH and self.sim._draw(self.sim.options.truncate_rate):
            payload = payload[: max(1, int(len(payload) * self.sim._draw_uniform()))]
            self.sim.stats.record_truncated()
        drip = self.sim.options.drip_interval if status == 200 and path == USAGE_PATH else 0.0
        # counted before the answer goes out, so a client that has read it sees it counted
        self.sim.stats.record(path, status)
        try:
            self._send(status, payload, headers, drip=drip)
        except OSError:  # the client closed the connection (a dripped body it gave up on)
            self.close_connection = True
            self.sim.stats.record_aborted(path, status)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            return b""
        if n <= 0:
            return b""
        if n > 1 << 20:
            self.close_connection = True
            return b""
        return self.rfile.read(n)

    def _send(self, status: int, payload: bytes, headers: dict[str, str], *, drip: float = 0.0) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if drip <= 0:
            self.wfile.write(payload)
            return
        self.wfile.flush()
        for k in range(len(payload)):  # one byte at a time: every read of the client gets a byte
            if self.sim._stopped.wait(drip):
                raise OSError("simulator stopped")
            self.wfile.write(payload[k : k + 1])
            self.wfile.flush()

    def _reset_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):  # linger 0: close() sends a TCP reset, not an orderly FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class SimulatorServer:
    """The product-usage API simulator. ``with SimulatorServer(opts) as sim: httpx.get(sim.url + …)``."""

    def __init__(
        self, options: SimulatorOptions | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.options = options if options is not None else SimulatorOptions()
        self.options.validate()
        self.data = SyntheticData(
            seed=self.options.seed,
            companies=self.options.companies,
            epoch=self.options.epoch,
            seasonality=self.options.seasonality,
        )
        self.stats = SimulatorStats()
        self.host = host
        self.port = port
        self.url = ""
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._rng = random.Random(self.options.seed)
        self._rng_lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (client, monotonic expiry)
        self._buckets: dict[str, _Bucket | _Strict] = {}
        self._lock = threading.Lock()
        self._special_cache: dict[tuple[date, int], int | None] = {}
        self._lifecycle = threading.RLock()
        self._stopped = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def _bind(self) -> _HTTPServer:
        if self._httpd is None:
            self._httpd = _HTTPServer((self.host, self.port), self)
            host, port = self._httpd.server_address[:2]
            self.port = int(port)
            shown = str(host) if str(host) not in ("0.0.0.0", "") else "127.0.0.1"
            self.url = f"http://{shown}:{self.port}"
        return self._httpd

    def start(self) -> str:
        """Start serving in a daemon thread; returns the base URL."""
        with self._lifecycle:
            if self._thread is not None:
                return self.url
            httpd = self._bind()
            self._stopped.clear()
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="usage-api-simulator",
                daemon=True,
            )
            self._thread.start()
            return self.url

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` has been called (True) or ``timeout`` passed (False)."""
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        """Stop serving, drop kept-alive connections and free the port. Safe to call twice."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
            if httpd is not None:
                if thread is not None:
                    httpd.shutdown()
                    thread.join(timeout=5)
                httpd.close_open_connections()
                httpd.server_close()
            self._stopped.set()

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- control -------------------------------------------------------------------------------------------
    def revoke_all_tokens(self) -> None:
        """Every token issued so far answers 401 invalid_token from now on."""
        with self._lock:
            self._tokens.clear()

    def set_today(self, day: date) -> None:
        """Move the simulator's "today" (days >= today are not final; retention counts back from it)."""
        self.options.today = day

    def today(self) -> date:
        return self.options.today or datetime.now(UTC).date()

    def usage(self, day: date) -> list[UsageRecord]:
        """What a faultless client receives for ``day``: the override if there is one, else the data."""
        override = self.options.overrides.get(day)
        if override is not None:
            return sorted(override, key=lambda r: r.company_id)
        return self.data.usage(day)

    def oversized_ids(self, day: date) -> list[str]:
        """The company ids whose record of ``day`` is served with an oversized id (``oversized_id_days``)."""
        iterate, _ = self._source(day)
        positions = self._oversized_positions(day, self._specials(day))
        return [cid for pos, cid, *_ in iterate(0) if pos in positions]

    def _specials(self, day: date) -> tuple[int | None, int | None]:
        """The positions of ``day`` that get the conflicting and the bad record (None: no such fault)."""
        opts = self.options
        conflict = self._special_position(day, _SALT_CONFLICT) if day in opts.conflict_days else None
        bad = self._special_position(day, _SALT_BAD, avoid=conflict) if day in opts.bad_record_days else None
        return conflict, bad

    def _oversized_positions(self, day: date, avoid: tuple[int | None, int | None]) -> frozenset[int]:
        """The active positions of ``day`` served with an oversized id: deterministic, from a pivot on,
        never those of ``avoid`` (the conflict and the bad record)."""
        opts = self.options
        if day not in opts.oversized_id_days or opts.oversized_id_count <= 0:
            return frozenset()
        iterate, bound = self._source(day)
        pivot = _mix((opts.seed ^ _SALT_OVERSIZED ^ (day.toordinal() << 20)) & _M64) % max(1, bound)
        found: set[int] = set()
        for first in (pivot, 0):
            for pos, *_ in iterate(first):
                if pos in found or len(found) >= opts.oversized_id_count:
                    break  # wrapped around, or enough
                if pos not in avoid:
                    found.add(pos)
        return frozenset(found)

    # -- randomness ----------------------------------------------------------------------------------------
    def _draw(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        with self._rng_lock:
            return self._rng.random() < rate

    def _draw_uniform(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def _choice(self, values: tuple[int, ...]) -> int:
        with self._rng_lock:
            return self._rng.choice(values)

    # -- the token endpoint --------------------------------------------------------------------------------
    def _handle_token(self, body: bytes, headers: Any) -> tuple[int, bytes, dict[str, str]]:
        opts = self.options
        self._maybe_fail()
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _Reply(400, "invalid_request") from None
        grant = _first(form, "grant_type")
        client_id, client_secret = _first(form, "client_id"), _first(form, "client_secret")
        basic = _basic_credentials(headers.get("Authorization"))
        if basic is not None and client_id is None:
            client_id, client_secret = basic
        if not opts.oauth_enabled:
            raise _Reply(400, "invalid_client")
        if client_id is None or client_secret is None:
            raise _Reply(400, "invalid_client")
        if not (
            secrets.compare_digest(client_id.encode(), str(opts.client_id).encode())
            and secrets.compare_digest(client_secret.encode(), str(opts.client_secret).encode())
        ):
            raise _Reply(401, "invalid_client")
        if grant != "client_credentials":
            raise _Reply(400, "unsupported_grant_type")
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}  # forget expired ones
            self._tokens[token] = (client_id, now + opts.token_ttl)
        self.stats.record_token()
        payload = {"access_token": token, "token_type": "Bearer", "expires_in": math.ceil(opts.token_ttl)}
        return 200, orjson.dumps(payload), {"Cache-Control": "no-store"}

    # -- the usage endpoint --------------------------------------------------------------------------------
    def _maybe_fail(self) -> None:
        opts = self.options
        if self._draw(opts.reset_rate):
            raise _Reset
        if self._draw(opts.error_rate):
            status = self._choice(_SERVER_ERRORS)
            raise _Reply(status, {500: "internal_error", 502: "bad_gateway"}.get(status, "unavailable"))

    def _authenticate(self, headers: Any) -> str:
        """The client identity of the request, or a 401."""
        opts = self.options
        key = headers.get("X-API-Key")
        if key is not None and opts.api_key:
            if secrets.compare_digest(key.encode(), opts.api_key.encode()):
                return "api-key"
            raise _Reply(401, "invalid_api_key")
        auth = headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if opts.oauth_enabled and scheme.lower() == "bearer" and token.strip():
            with self._lock:
                entry = self._tokens.get(token.strip())
                if entry is None or entry[1] <= time.monotonic():
                    self._tokens.pop(token.strip(), None)
                    raise _Reply(401, "invalid_token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            if self._draw(opts.revoke_rate):
                with self._lock:
                    self._tokens.pop(token.strip(), None)
                raise _Reply(401, "invalid_token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return "oauth:" + entry[0]
        if opts.oauth_enabled:
            raise _Reply(401, "invalid_token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        raise _Reply(401, "invalid_api_key")

    def _rate_limit(self, client: str, arrived: float | None = None) -> dict[str, str]:
        """Rate-limit headers for the response, or a 429."""
        opts = self.options
        headers: dict[str, str] = {}
        if opts.rate_limit is not None:
            with self._lock:
                bucket = self._buckets.get(client)
                kind = _Strict if opts.rate_limit_strict else _Bucket
                if type(bucket) is not kind or bucket.rate != opts.rate_limit:
                    bucket = self._buckets[client] = kind(opts.rate_limit)
                allowed, wait = bucket.take(arrived)
                remaining = int(bucket.tokens)
            headers = {
                "X-RateLimit-Limit": str(max(1, round(opts.rate_limit))),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(math.ceil(wait)),
            }
            if not allowed:
                raise _Reply(429, "rate_limited", headers | {"Retry-After": self._retry_after(wait)})
        if self._draw(opts.rate_limited_rate):
            raise _Reply(
                429, "rate_limited", headers | {"Retry-After": self._retry_after(opts.retry_after_seconds)}
            )
        return headers

    def _retry_after(self, seconds: float) -> str:
        style = self.options.retry_after
        if style == "zero":
            return "0"
        whole = max(1, math.ceil(seconds)) if seconds > 0 else 0
        if style == "http-date":
            return formatdate(math.ceil(time.time()) + whole, usegmt=True)
        return str(whole)

    def _handle_usage(
        self, query: str, headers: Any, arrived: float | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        opts = self.options
        if opts.latency > 0:
            time.sleep(opts.latency)
        self._maybe_fail()
        client = self._authenticate(headers)
        response_headers = self._rate_limit(client, arrived)
        params = parse_qs(query, keep_blank_values=True)
        day = _parse_date(_first(params, "date"))
        limit_text = _first(params, "limit")
        limit = DEFAULT_LIMIT
        if limit_text is not None:
            if not _INT_RE.fullmatch(limit_text) or not 1 <= int(limit_text) <= MAX_LIMIT:
                raise _Reply(400, "invalid_request")
            limit = int(limit_text)
        today = self.today()
        if day < today - timedelta(days=opts.retention_days):
            raise _Reply(404, "date_not_available")
        if day >= today or day in opts.not_final_days:
            raise _Reply(409, "date_not_final")
        cursor_text = _first(params, "cursor")
        start, emitted = (0, 0) if cursor_text is None else _decode_cursor(cursor_text, day)
        records, next_position = self._page(day, start, emitted, limit)
        if next_position is None and opts.endless_cursor:
            next_position = (max(start + 1, self._source(day)[1]), 0)  # always further: never repeats
        cursor = None if next_position is None else _encode_cursor(day, *next_position)
        payload = orjson.dumps({"date": day.isoformat(), "data": records, "next_cursor": cursor})
        return 200, payload, response_headers

    # -- pages ---------------------------------------------------------------------------------------------
    def _source(self, day: date) -> tuple[Callable[[int], Iterator[tuple[int, str, int, int]]], int]:
        """An iterator factory over (position, company_id, active_users, events) and the position bound."""
        override = self.options.overrides.get(day)
        if override is not None:
            items = sorted(override, key=lambda r: r.company_id)

            def from_list(start: int) -> Iterator[tuple[int, str, int, int]]:
                for pos in range(start, len(items)):
                    r = items[pos]
                    yield pos, r.company_id, r.active_users, r.events

            return from_list, len(items)

        def from_data(start: int) -> Iterator[tuple[int, str, int, int]]:
            for index, users, events in self.data._iter_values(day, start):
                yield index, f"C{index:07d}", users, events

        return from_data, self.data.companies

    def _special_position(self, day: date, salt: int, avoid: int | None = None) -> int | None:
        """A deterministic active position of ``day`` (the one that gets a conflict or a bad record)."""
        override = self.options.overrides.get(day)
        key = (day, salt)
        if override is None and avoid is None:
            with self._lock:
                if key in self._special_cache:
                    return self._special_cache[key]
        iterate, bound = self._source(day)
        found: int | None = None
        if bound > 0:
            pivot = _mix((self.options.seed ^ salt ^ (day.toordinal() << 20)) & _M64) % bound
            for first in (pivot, 0):
                for pos, *_ in iterate(first):
                    if pos != avoid:
                        found = pos
                        break
                if found is not None:
                    break
        if override is None and avoid is None:
            with self._lock:
                self._special_cache[key] = found
        return found

    def _emissions(
        self,
        day: date,
        pos: int,
        cid: str,
        users: int,
        events: int,
        specials: tuple[int | None, int | None],
        oversized: frozenset[int] = frozenset(),
    ) -> list[dict[str, Any]]:
        """The records served for one company: normally one, sometimes repeated, conflicting or bad."""
        opts = self.options
        record: dict[str, Any] = {"company_id": cid, "active_users": users, "events": events}
        if opts.drift_fields:
            h = _mix((opts.seed * 31 + pos) & _M64)
            record["plan"] = _PLANS[h % len(_PLANS)]
            record["region"] = _REGIONS[(h >> 8) % len(_REGIONS)]
        conflict_pos, bad_pos = specials
        if pos in oversized:
            record["company_id"] = (cid + "-" + "x" * OVERSIZED_ID_LENGTH)[:OVERSIZED_ID_LENGTH]
        if pos == bad_pos:
            kind = _mix((opts.seed ^ day.toordinal() ^ _SALT_BAD) & _M64) % 3
            if kind == 0:
                record["active_users"] = -1 - users % 5
            elif kind == 1:
                record["events"] = -1 - events % 7
            else:
                del record["events"]
        out = [record]
        if pos == conflict_pos:
            out.append(record | {"active_users": users + 1, "events": events + 17})
        elif opts.duplicate_rate > 0.0:
            h = _mix((opts.seed ^ _SALT_DUPLICATE ^ (day.toordinal() << 24) ^ (pos * 0x9E37)) & _M64)
            if (h & 0xFFFFFF) < opts.duplicate_rate * 0x1000000:
                out.append(dict(record))
        return out

    def _page(
        self, day: date, start: int, emitted: int, limit: int
    ) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
        """Up to ``limit`` records from position ``start`` (``emitted`` of its records already served)."""
        opts = self.options
        iterate, _ = self._source(day)
        conflict, bad = self._specials(day)
        oversized = self._oversized_positions(day, (conflict, bad))
        plain = (
            not opts.drift_fields
            and opts.duplicate_rate <= 0.0
            and conflict is None
            and bad is None
            and not oversized
        )
        out: list[dict[str, Any]] = []
        if plain and day not in opts.overrides:  # the hot path: straight from the data
            append = out.append
            for index, users, events in self.data._iter_values(day, start):
                if len(out) >= limit:
                    return out, (index, 0)
                if emitted and index == start:
                    continue
                append({"company_id": f"C{index:07d}", "active_users": users, "events": events})
            return out, None
        for pos, cid, users, events in iterate(start):
            if len(out) >= limit:
                return out, (pos, 0)
            if plain:
                if emitted and pos == start:
                    continue
                out.append({"company_id": cid, "active_users": users, "events": events})
                continue
            emissions = self._emissions(day, pos, cid, users, events, (conflict, bad), oversized)
            skip = emitted if pos == start else 0
            for k in range(skip, len(emissions)):
                if len(out) >= limit:
                    return out, (pos, k)
                out.append(emissions[k])
        return out, None


# -- helpers ------------------------------------------------------------------------------------------------
def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _parse_date(text: str | None) -> date:
    if text is None or not _DATE_RE.fullmatch(text):
        raise _Reply(400, "invalid_request")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _Reply(400, "invalid_request") from None


def _encode_cursor(day: date, position: int, emitted: int) -> str:
    raw = f"{day.isoformat()}:{position}:{emitted}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(text: str, day: date) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        cursor_day, position, emitted = raw.split(":")
        if cursor_day != day.isoformat() or not _POSITION_RE.fullmatch(position) or emitted not in ("0", "1"):
            raise ValueError(raw)
        return int(position), int(emitted)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _Reply(400, "invalid_request") from None


def serve(
    options: SimulatorOptions,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    ready: Callable[[SimulatorServer], None] | None = None,
) -> None:
    """Serve the simulator in this thread until Ctrl-C (or SIGTERM); ``ready`` is called once it listens."""
    server = SimulatorServer(options, host=host, port=port)
    server.start()
    previous: Any = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:

        def on_term(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        if ready is not None:
            ready(server)
        while not server.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
