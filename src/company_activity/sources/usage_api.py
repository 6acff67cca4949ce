"""Client for the product-usage API v1 (``shared/specs/product-usage-api.md``).

:class:`UsageApiClient` fetches one UTC day page by page (:meth:`UsageApiClient.fetch_day`) and yields
each ``200`` body exactly as received, so the pipeline can land raw pages in the lake before anything is
parsed. :func:`parse_usage_page` validates one such body against the contract.

Behaviour, per the spec's error table:

* Auth: OAuth2 client credentials (``POST {base}/oauth/token``, token cached and shared by every thread,
  refreshed shortly before ``expires_in``) when a client id and secret are given, else ``X-API-Key``.
  A ``401`` on a data request fetches a new token and repeats the same request once; a second ``401``
  straight after a fresh token, a ``401`` with an API key, or ``400``/``401`` from the token endpoint raise
  :class:`~company_activity.errors.CredentialsRejected`.
* ``400`` -> InvalidRequest, ``404 date_not_available`` -> DateNotAvailable, ``409 date_not_final`` ->
  DateNotFinal (not retried), any other unexpected client error -> InvalidRequest.
* ``429``, ``408``, ``5xx`` (but ``501``/``505``), transport errors (refused, reset, timeouts, protocol
  errors) and a truncated or non-JSON ``200`` body are transient: retried by a :mod:`tenacity` loop with
  exponential backoff and full jitter (``Retry-After`` honoured, floored and capped), bounded by
  ``max_attempts`` per request and by ``budget_seconds`` of waiting over the client's lifetime; then
  :class:`~company_activity.errors.ApiUnavailable`.
* One :mod:`pyrate_limiter` limiter per client paces every request, token requests and retries included;
  when several days wait for it, the oldest day's request goes first.

Every message names the day, the HTTP status and the error code, and never contains the client secret,
the API key or a token (anything the server echoes back is redacted too).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from operator import itemgetter
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import httpx
import orjson
from pyrate_limiter import Duration, Limiter, Rate
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from ..errors import (
    ApiTransientError,
    ApiUnavailable,
    ConfigError,
    CredentialsRejected,
    DateNotAvailable,
    DateNotFinal,
    InvalidRequest,
    UsageDataError,
)

__all__ = ["Page", "ParsedPage", "RetryPolicy", "UsageApiClient", "parse_usage_doc", "parse_usage_page"]

log = logging.getLogger("company_activity.usage_api")

T = TypeVar("T")

USAGE_PATH = "/v1/usage/daily"
TOKEN_PATH = "/oauth/token"
USER_AGENT = "company-activity usage-api-client/1"

#: statuses worth retrying (besides 429): the spec's 500/502/503/504, plus 408 and the rest of 5xx
#: except "not implemented" and "HTTP version not supported", which no retry can change.
_NOT_TRANSIENT_5XX = frozenset({501, 505})

# Indirection so tests can move the token clock.
_monotonic = time.monotonic


# -- value types ------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class Page:
    """One ``200`` page of a day, as received."""

    number: int  # 1-based
    cursor: str | None  # the cursor sent for this page (None for the first)
    body: bytes  # the raw 200 response body, exactly as received
    record_count: int
    next_cursor: str | None
    params: dict[str, str]  # query parameters sent
    fetched_at: datetime  # UTC aware
    #: the body decoded (a JSON object whose envelope was checked), so that it is not decoded twice
    doc: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ParsedPage:
    """The validated content of one page, column by column (index ``i`` of each list is record ``i``)."""

    company_ids: list[str]
    active_users: list[int]
    events: list[int]
    extra_fields: frozenset[str]  # record fields beyond the contract (schema drift)
    next_cursor: str | None
    #: for each extra field, the index of the first record that carries it
    first_extra: dict[str, int] = field(default_factory=dict)

    @property
    def records(self) -> list[tuple[str, int, int]]:
        """``(company_id, active_users, events)`` in page order."""
        return list(zip(self.company_ids, self.active_users, self.events, strict=True))

    def __len__(self) -> int:
        return len(self.company_ids)


# -- parsing ----------------------------------------------------------------------------------------------
_FIELDS = ("company_id", "active_users", "events")
_FIELD_SET = frozenset(_FIELDS)
_MISSING: Any = object()


def _show(value: Any) -> str:
    """A value as JSON, shortened, for messages."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _check_envelope(doc: Any, day: date, source: str) -> tuple[list[Any], str | None]:
    """The ``data`` list and ``next_cursor`` of a decoded page, or UsageDataError."""
    if type(doc) is not dict:
        raise UsageDataError(f"{source}: the body is not a JSON object (got {_kind(doc)})")
    expected = day.isoformat()
    got = doc.get("date", _MISSING)
    if got is _MISSING:
        raise UsageDataError(f"{source}: field 'date' is missing (expected {expected!r})")
    if got != expected:
        raise UsageDataError(f"{source}: field 'date' is {_show(got)}, expected {expected!r}")
    data = doc.get("data", _MISSING)
    if data is _MISSING:
        raise UsageDataError(f"{source}: field 'data' is missing")
    if type(data) is not list:
        raise UsageDataError(f"{source}: field 'data' must be an array, got {_kind(data)} {_show(data)}")
    if "next_cursor" not in doc:
        raise UsageDataError(f"{source}: field 'next_cursor' is missing")
    next_cursor = doc["next_cursor"]
    if next_cursor is not None and type(next_cursor) is not str:
        raise UsageDataError(
            f"{source}: field 'next_cursor' must be a string or null, got {_kind(next_cursor)} "
            f"{_show(next_cursor)}"
        )
    return data, next_cursor


def _record_error(source: str, index: int, record: Any) -> UsageDataError:
    """Describe precisely why ``record`` breaks the contract."""
    if type(record) is not dict:
        return UsageDataError(
            f"{source}: record {index} must be a JSON object, got {_kind(record)} {_show(record)}"
        )
    cid = record.get("company_id")
    where = f"record {index}"
    if type(cid) is str and cid.strip():
        where += f" (company_id {_show(cid)})"
    missing = [f for f in _FIELDS if f not in record]
    if missing:
        names = ", ".join(repr(f) for f in missing)
        return UsageDataError(f"{source}: {where}: missing field{'s' if len(missing) > 1 else ''} {names}")
    if type(cid) is not str or not cid.strip():
        return UsageDataError(
            f"{source}: {where}: field 'company_id' must be a non-empty string, got {_kind(cid)} {_show(cid)}"
        )
    for name in ("active_users", "events"):
        value = record[name]
        if type(value) is not int or value < 0:
            return UsageDataError(
                f"{source}: {where}: field {name!r} must be an integer >= 0, "
                f"got {_kind(value)} {_show(value)}"
            )
    return UsageDataError(f"{source}: {where}: invalid record {_show(record)}")  # pragma: no cover


_get_company_id = itemgetter("company_id")
_get_active_users = itemgetter("active_users")
_get_events = itemgetter("events")


def parse_usage_page(body: bytes, *, day: date, source: str) -> ParsedPage:
    """Validate one ``200`` body of ``GET /v1/usage/daily`` for ``day`` against the contract.

    Returns the records column by column in page order (repeats are kept: the caller judges duplicates
    across the whole day) and the record fields beyond the contract. Any violation raises
    :class:`UsageDataError` naming ``source``, the record index, the field and the value.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UsageDataError(f"{source}: the body is not valid JSON ({exc})") from None
    return parse_usage_doc(doc, day=day, source=source)


def parse_usage_doc(doc: Any, *, day: date, source: str) -> ParsedPage:
    """:func:`parse_usage_page` of a body already decoded (``Page.doc``).

    The common case costs no Python bytecode per record: the columns are gathered and checked with
    C-level ``map``/``set``/``min`` passes. Only when a check fails does a record-by-record pass run, to
    name the first offending record precisely.
    """
    data, next_cursor = _check_envelope(doc, day, source)
    try:
        if not set(map(type, data)) <= {dict}:
            raise TypeError
        company_ids: list[Any] = list(map(_get_company_id, data))
        users: list[Any] = list(map(_get_active_users, data))
        events: list[Any] = list(map(_get_events, data))
    except (KeyError, TypeError):
        _raise_first_bad_record(data, source)
    if data and not (
        set(map(type, company_ids)) == {str}
        and set(map(type, users)) == {int}
        and set(map(type, events)) == {int}
        and min(users) >= 0
        and min(events) >= 0
        and all(map(str.strip, company_ids))  # non-empty and not only whitespace
    ):
        _raise_first_bad_record(data, source)
    extra: frozenset[str] = frozenset()
    first_extra: dict[str, int] = {}
    if data and set(map(len, data)) != {3}:
        extra = frozenset(set().union(*data) - _FIELD_SET)
        for index, rec in enumerate(data):
            if len(rec) != 3:
                for name in rec.keys() - _FIELD_SET:
                    first_extra.setdefault(name, index)
                if len(first_extra) == len(extra):
                    break
    return ParsedPage(company_ids, users, events, extra, next_cursor, first_extra)


def _raise_first_bad_record(data: list[Any], source: str) -> NoReturn:
    """Raise the precise UsageDataError of the first record of ``data`` that breaks the contract."""
    for index, rec in enumerate(data):
        if type(rec) is not dict:
            raise _record_error(source, index, rec)
        cid = rec.get("company_id")
        users = rec.get("active_users")
        events = rec.get("events")
        if (
            len(rec) < 3
            or "company_id" not in rec
            or "active_users" not in rec
            or "events" not in rec
            or type(cid) is not str
            or type(users) is not int
            or type(events) is not int
            or users < 0
            or events < 0
            or not cid.strip()
        ):
            raise _record_error(source, index, rec)
    raise UsageDataError(f"{source}: invalid records")  # pragma: no cover - the fast checks agree


# -- HTTP helpers -----------------------------------------------------------------------------------------
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


_INVALID: Any = object()


def _loads(body: bytes) -> Any:
    """The decoded JSON of ``body``, or ``_INVALID`` (no exception, so nothing chains the body along)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _INVALID


_LIMITER_BUFFER_MS = 2


def _make_limiter(rate: float) -> Limiter:
    """A limiter admitting ``rate`` requests per second (a sliding window; fractional rates spread out)."""
    if not (rate > 0 and math.isfinite(rate)):
        raise ConfigError(f"api rate limit must be a positive number of requests per second, got {rate}")
    count = max(1, math.floor(rate))
    interval_ms = max(1, math.ceil(Duration.SECOND.value * count / rate))
    # pyrate-limiter sleeps the computed delay plus ``buffer_ms`` before trying again; its default (50 ms)
    # would cost a stream kept at the limit 5 % of its rate (50 ms per 1 s window)
    return Limiter(Rate(count, interval_ms), buffer_ms=_LIMITER_BUFFER_MS)


class _OldestDayFirst:
    """Hands the rate limiter's permits to the waiting request of the oldest day first.

    One thread at a time waits on the limiter; when it has its permit, the oldest day among the threads
    waiting goes next. A catch-up then completes its days oldest first, each day's staging load overlapping
    the fetching of the next (instead of every day finishing together at the end), and the days nearest to
    leaving the API's retention are captured first. Capacity the oldest day cannot use (while its request
    is on the wire) goes to younger days, so the limit stays saturated.
    """

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._cond = threading.Condition()
        self._waiting: list[tuple[date, int]] = []  # a heap of (day, arrival)
        self._arrivals = itertools.count()
        self._busy = False

    def acquire(self, day: date) -> None:
        ticket = (day, next(self._arrivals))
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            while self._busy or self._waiting[0] != ticket:
                self._cond.wait()
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


@dataclass
class _RetryRun:
    """Book-keeping of one request's retry loop."""

    started: float
    waited: float = 0.0
    reason: str = ""


@dataclass
class _AuthState:
    """Whether the previous answer to this request was a 401 that made us fetch a fresh token."""

    refreshed: bool = False


class UsageApiClient:
    """Fetches days from the product-usage API. Thread-safe: ``fetch_day`` may run in several threads."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_key: str | None = None,
        http: httpx.Client | None = None,
        page_size: int = 1000,
        timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        rate_limit: float | None = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        base = (base_url or "").strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"product-usage API URL {base_url!r} must start with http:// or https://")
        if not 1 <= page_size <= 1000:
            raise ConfigError(f"api page size must be between 1 and 1000, got {page_size}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ConfigError(f"api timeout must be a positive number of seconds, got {timeout}")
        client_id = client_id or None
        client_secret = client_secret or None
        api_key = api_key or None
        if (client_id is None) != (client_secret is None):
            given, absent = ("CLIENT_ID", "CLIENT_SECRET") if client_id else ("CLIENT_SECRET", "CLIENT_ID")
            raise ConfigError(
                f"COMPANY_ACTIVITY_API_{given} is set but COMPANY_ACTIVITY_API_{absent} is not: "
                "OAuth2 client credentials need both"
            )
        if client_id is None and api_key is None:
            raise ConfigError(
                "no product-usage API credentials: set COMPANY_ACTIVITY_API_CLIENT_ID and "
                "COMPANY_ACTIVITY_API_CLIENT_SECRET, or COMPANY_ACTIVITY_API_KEY"
            )

        self._base_url = base
        self._usage_url = base + USAGE_PATH
        self._token_url = base + TOKEN_PATH
        self._client_id = client_id
        self._client_secret = client_secret
        self._api_key = api_key if client_id is None else None
        self._oauth = client_id is not None
        self._page_size = page_size
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self._limiter = _OldestDayFirst(_make_limiter(rate_limit)) if rate_limit is not None else None

        self._lock = threading.Lock()  # counters, budget, rng, secrets
        self._token_lock = threading.Lock()  # the token cache; held while a token is fetched
        self._token: str | None = None
        self._token_refresh_at: float | None = None  # monotonic; None = until rejected
        self._secrets: set[str] = {s for s in (client_secret, api_key) if s}
        self._retry_seconds_used = 0.0
        self._requests_sent = 0
        self._closed = False

    # -- public surface ---------------------------------------------------------------------------------
    @property
    def retry_seconds_used(self) -> float:
        """Seconds of retry waiting spent so far (counted against ``RetryPolicy.budget_seconds``)."""
        with self._lock:
            return self._retry_seconds_used

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far, token requests and retries included."""
        with self._lock:
            return self._requests_sent

    def fetch_day(self, day: date) -> Iterator[Page]:
        """Yield every page of ``day``, following ``next_cursor`` until it is null.

        Raises the :mod:`company_activity.errors` API errors described in the module docstring, and
        UsageDataError when a page cannot be paginated (not a JSON object, wrong ``date``, ``data`` not a
        list, bad ``next_cursor``, a cursor repeating). Record-level validation is
        :func:`parse_usage_page`'s job, so a page with bad records still reaches the lake.
        """
        iso = day.isoformat()
        cursor: str | None = None
        seen: set[str] = set()
        number = 0
        while True:
            number += 1
            params = {"date": iso, "limit": str(self._page_size)}
            if cursor is not None:
                params["cursor"] = cursor
            what = f"page {number}"
            auth = _AuthState()
            body, doc = self._with_retry(day, what, partial(self._get_page_once, day, what, params, auth))
            fetched_at = datetime.now(UTC)
            data, next_cursor = _check_envelope(doc, day, f"product-usage API {iso} {what}")
            log.debug(
                "fetched %s %s: %d records, %d bytes, next cursor %s",
                iso,
                what,
                len(data),
                len(body),
                "none" if next_cursor is None else "present",
            )
            yield Page(
                number=number,
                cursor=cursor,
                body=body,
                record_count=len(data),
                next_cursor=next_cursor,
                params=params,
                fetched_at=fetched_at,
                doc=doc,
            )
            if next_cursor is None:
                return
            if next_cursor in seen or next_cursor == cursor:
                raise UsageDataError(
                    f"product-usage API {iso} {what}: next_cursor repeats an earlier cursor "
                    "(the server's pagination loops)"
                )
            seen.add(next_cursor)
            cursor = next_cursor

    def close(self) -> None:
        """Release the HTTP connections (if the client made its own) and the limiter."""
        if self._closed:
            return
        self._closed = True
        if self._owns_http:
            self._http.close()
        if self._limiter is not None:
            self._limiter.close()

    def __enter__(self) -> UsageApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "oauth2 client credentials" if self._oauth else "api key"
        return f"UsageApiClient({self._base_url!r}, auth={mode})"

    # -- one data request -------------------------------------------------------------------------------
    def _get_page_once(
        self, day: date, what: str, params: dict[str, str], auth: _AuthState
    ) -> tuple[bytes, Any]:
        """One attempt at a page (a 401 with OAuth repeats it once with a fresh token)."""
        while True:
            headers, token = self._auth_headers(day)
            response = self._send("GET", self._usage_url, day, what, params=params, headers=headers)
            status = response.status_code
            if status == 401:
                self._on_unauthorized(response, day, what, token, auth)
                continue
            auth.refreshed = False
            if status == 200:
                body = response.content
                doc = _loads(body)
                if doc is _INVALID:
                    raise ApiTransientError(
                        f"HTTP 200 with a truncated or non-JSON body ({len(body)} bytes) for {day} {what}",
                        status=200,
                    )
                return body, doc
            self._raise_for_status(response, day, what)

    def _on_unauthorized(
        self, response: httpx.Response, day: date, what: str, token: str | None, auth: _AuthState
    ) -> None:
        code = self._describe(response)
        if not self._oauth:
            raise CredentialsRejected(
                f"credentials rejected by the product-usage API for {day} ({what}): {code} "
                "with the API key (COMPANY_ACTIVITY_API_KEY)",
                status=401,
                day=day,
            )
        if auth.refreshed:
            raise CredentialsRejected(
                f"credentials rejected by the product-usage API for {day} ({what}): {code} again "
                "straight after a fresh access token (client credentials revoked?)",
                status=401,
                day=day,
            )
        auth.refreshed = True
        with self._token_lock:
            if self._token == token:
                self._token = None
        log.info("access token rejected for %s %s (%s); fetching a new one and repeating", day, what, code)

    def _raise_for_status(self, response: httpx.Response, day: date, what: str) -> NoReturn:
        status = response.status_code
        code = self._error_code(response)
        desc = self._describe(response, code)
        if status == 404 and code == "date_not_available":
            raise DateNotAvailable(
                f"usage for {day} is not available: {desc} (older than the API's retention; "
                "that day's data is lost)",
                status=status,
                day=day,
            )
        if status == 409 and code == "date_not_final":
            raise DateNotFinal(
                f"usage for {day} is not final yet: {desc}; the day stays pending", status=status, day=day
            )
        self._raise_transient_or_other(response, day, what, desc)

    def _raise_transient_or_other(
        self, response: httpx.Response, day: date, what: str, desc: str
    ) -> NoReturn:
        status = response.status_code
        if status in (408, 429) or (500 <= status <= 599 and status not in _NOT_TRANSIENT_5XX):
            raise ApiTransientError(
                f"{desc} for {day} {what}",
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status == 400:
            raise InvalidRequest(
                f"the product-usage API rejected the request for {day} ({what}): {desc}",
                status=status,
                day=day,
            )
        hint = " (check COMPANY_ACTIVITY_API_URL)" if status in (404, 405) or 300 <= status < 400 else ""
        raise InvalidRequest(
            f"unexpected answer from the product-usage API for {day} ({what}): {desc}{hint}",
            status=status,
            day=day,
        )

    # -- auth -------------------------------------------------------------------------------------------
    def _auth_headers(self, day: date) -> tuple[dict[str, str], str | None]:
        if not self._oauth:
            assert self._api_key is not None
            return {"X-API-Key": self._api_key, "Accept": "application/json"}, None
        token = self._current_token(day)
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}, token

    def _current_token(self, day: date) -> str:
        """The cached token, or a new one (one thread fetches; the others wait for it)."""
        with self._token_lock:
            token, refresh_at = self._token, self._token_refresh_at
            if token is not None and (refresh_at is None or _monotonic() < refresh_at):
                return token
            token, expires_in, requested_at = self._with_retry(
                day, "access token", partial(self._fetch_token_once, day)
            )
            self._token = token
            if expires_in is None:
                self._token_refresh_at = None
            else:
                self._token_refresh_at = requested_at + expires_in - min(60.0, 0.1 * expires_in)
            log.info(
                "fetched a new access token (expires in %s)",
                "an unknown time" if expires_in is None else f"{expires_in:g} s",
            )
            return token

    def _fetch_token_once(self, day: date) -> tuple[str, float | None, float]:
        assert self._client_id is not None and self._client_secret is not None
        requested_at = _monotonic()
        response = self._send(
            "POST",
            self._token_url,
            day,
            "access token",
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            headers={"Accept": "application/json"},
        )
        status = response.status_code
        if status == 200:
            doc = _loads(response.content)
            if doc is _INVALID:
                raise ApiTransientError(
                    f"token endpoint answered HTTP 200 with a truncated or non-JSON body (for {day})",
                    status=200,
                )
            token = doc.get("access_token") if type(doc) is dict else None
            if type(token) is not str or not token:
                raise ApiTransientError(
                    f"token endpoint answered HTTP 200 without an access_token (for {day})", status=200
                )
            with self._lock:
                self._secrets.add(token)
            expires = doc.get("expires_in")
            expires_in = (
                float(expires)
                if type(expires) in (int, float) and math.isfinite(expires) and expires > 0
                else None
            )
            return token, expires_in, requested_at
        desc = self._describe(response)
        if status in (400, 401):
            raise CredentialsRejected(
                f"credentials rejected by the product-usage API token endpoint (for {day}): {desc} "
                "(check COMPANY_ACTIVITY_API_CLIENT_ID and COMPANY_ACTIVITY_API_CLIENT_SECRET)",
                status=status,
                day=day,
            )
        self._raise_transient_or_other(response, day, "access token", f"token endpoint {desc}")

    # -- transport --------------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        day: date,
        what: str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request through the rate limiter; transport failures become ApiTransientError."""
        if self._limiter is not None:
            self._limiter.acquire(day)
        with self._lock:
            self._requests_sent += 1
        headers = {"User-Agent": USER_AGENT, **headers}
        # The httpx exception (whose request carries the credentials) is not chained to what we raise.
        failure: Exception
        try:
            return self._http.request(
                method, url, params=params, data=data, headers=headers, timeout=self._timeout
            )
        except httpx.UnsupportedProtocol as exc:
            failure = ConfigError(
                f"product-usage API URL {self._base_url!r} cannot be used: {self._redact(str(exc))}"
            )
        except httpx.LocalProtocolError as exc:
            failure = InvalidRequest(
                f"the request for {day} ({what}) could not be sent: {self._redact(str(exc))}", day=day
            )
        except (httpx.TransportError, httpx.DecodingError) as exc:
            detail = self._redact(str(exc)) or "no detail"
            failure = ApiTransientError(f"{type(exc).__name__} ({detail}) for {day} {what}")
        raise failure

    def _error_code(self, response: httpx.Response) -> str | None:
        doc = _loads(response.content)
        code = doc.get("error") if type(doc) is dict else None
        if type(code) is not str or not code:
            return None
        return self._redact(code if len(code) <= 64 else code[:61] + "...")

    def _describe(self, response: httpx.Response, code: str | None = None) -> str:
        code = code if code is not None else self._error_code(response)
        return f"HTTP {response.status_code} {code}" if code else f"HTTP {response.status_code}"

    def _redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    # -- the retry loop (tenacity) ----------------------------------------------------------------------
    def _with_retry(self, day: date, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it returns, retrying ApiTransientError within attempts and budget."""
        run = _RetryRun(started=_monotonic())
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
        policy = self._retry
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
        policy = self._retry
        if state.attempt_number >= policy.max_attempts:
            run.reason = f"gave up after {state.attempt_number} attempts"
            return True
        wait = state.upcoming_sleep
        with self._lock:
            used = self._retry_seconds_used
            if used + wait > policy.budget_seconds:
                run.reason = (
                    f"the retry budget of {policy.budget_seconds:g} s for this run is exhausted "
                    f"({used:.1f} s used, the next wait would be {wait:.1f} s)"
                )
                return True
            self._retry_seconds_used = used + wait
        run.waited += wait
        return False

    def _log_retry(self, day: date, what: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "product-usage API: %s (attempt %d of %d); retrying %s %s in %.2f s",
            exc,
            state.attempt_number,
            self._retry.max_attempts,
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
        elapsed = _monotonic() - run.started
        raise ApiUnavailable(
            f"product-usage API unavailable for {day} ({what}): {run.reason}; last error: {exc}; "
            f"{state.attempt_number} attempt(s), {run.waited:.1f} s of retry waiting, {elapsed:.1f} s in all",
            status=status,
            day=day,
        ) from exc
