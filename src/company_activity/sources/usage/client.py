"""The HTTP client of the product-usage API v1 (``shared/specs/product-usage-api.md``).

:class:`UsageApiClient` fetches one UTC day page by page (:meth:`UsageApiClient.fetch_day`) and yields
each ``200`` body exactly as received, so the pipeline can land raw pages in the lake before anything is
parsed (:mod:`.contract` validates them).

Behaviour, per the spec's error table:

* Auth (:mod:`.auth`): OAuth2 client credentials when a client id and secret are given, else ``X-API-Key``.
  A ``401`` on a data request fetches a new token and repeats the same request once; a second ``401``
  straight after a fresh token, a ``401`` with an API key, or ``400``/``401`` from the token endpoint raise
  :class:`~company_activity.errors.CredentialsRejected`.
* ``400`` -> InvalidRequest, ``404 date_not_available`` -> DateNotAvailable, ``409 date_not_final`` ->
  DateNotFinal (not retried), any other unexpected client error -> InvalidRequest (:mod:`.answers`).
* ``429``, ``408``, ``5xx`` (but ``501``/``505``), transport errors, a request that takes longer than
  ``timeout`` in all (connect + every read: :mod:`.transport`) and a truncated or non-JSON ``200`` body are
  transient: retried (:mod:`.retry`) within ``max_attempts`` per request and ``budget_seconds`` of waiting
  per client; then :class:`~company_activity.errors.ApiUnavailable`.
* Requests are paced evenly at ``rate_limit`` per second, oldest day first; a ``429`` halves the pace,
  which recovers gradually (:mod:`.pacing`).
* Bounded: at most ``max_pages_per_day`` pages a day (more is a UsageDataError naming the day and the
  cap); the ``stop`` signal is checked between pages, interrupts every wait and aborts a blocked read
  within a fraction of a second (:class:`~company_activity.errors.RunStopped` propagates).

Every message names the day, the HTTP status and the error code, and never contains the client secret,
the API key or a token (anything the server echoes back is redacted too).
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from functools import partial
from types import TracebackType
from typing import Any

import httpx

from ...errors import (
    ApiTransientError,
    ConfigError,
    InvalidRequest,
    UsageDataError,
)
from ...stopping import NEVER, StopSignal
from . import answers
from .auth import Authenticator, AuthState, Credentials
from .contract import INVALID, Page, check_envelope, decode_json
from .pacing import AdaptivePacer, OldestDayFirst
from .retry import Retrier, RetryPolicy
from .transport import RequestDeadlineExceeded, guarded, guarded_transport

__all__ = ["DEFAULT_MAX_PAGES_PER_DAY", "UsageApiClient"]

log = logging.getLogger("company_activity.usage_api")

USAGE_PATH = "/v1/usage/daily"
TOKEN_PATH = "/oauth/token"
USER_AGENT = "company-activity usage-api-client/1"
#: the "[Errno 111] " before an OS error's words
_ERRNO = re.compile(r"^\[Errno -?\d+\] ")
#: far above any real day (20 million records at the largest page size)
DEFAULT_MAX_PAGES_PER_DAY = 20_000


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
        retry: RetryPolicy | None = None,
        rate_limit: float | None = 10.0,
        rate_floor: float = 0.5,
        max_pages_per_day: int = DEFAULT_MAX_PAGES_PER_DAY,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        stop: StopSignal = NEVER,
        url_origin: str | None = None,
    ) -> None:
        base = (base_url or "").strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"product-usage API URL {base_url!r} must start with http:// or https://")
        if not 1 <= page_size <= 1000:
            raise ConfigError(f"api page size must be between 1 and 1000, got {page_size}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ConfigError(f"api timeout must be a positive number of seconds, got {timeout}")
        if max_pages_per_day < 1:
            raise ConfigError(f"api max pages per day must be >= 1, got {max_pages_per_day}")
        self._creds = Credentials.of(client_id, client_secret, api_key)

        self._base_url = base
        #: where the URL was configured ("COMPANY_ACTIVITY_API_URL from the environment", …): said when
        #: the API cannot be reached
        self._url_origin = url_origin
        self._usage_url = base + USAGE_PATH
        self._page_size = page_size
        self._timeout = timeout
        self._max_pages = max_pages_per_day
        self._stop = stop
        self._retrier = Retrier(
            retry or RetryPolicy(),
            sleep=self._stoppable(sleep) if sleep is not None else stop.sleep,
            rng=rng or random.Random(),
        )
        self._owns_http = http is None
        self._http = (
            http if http is not None else httpx.Client(timeout=timeout, transport=guarded_transport())
        )
        self.pacer = (
            AdaptivePacer(rate_limit, floor=rate_floor, sleep=stop.sleep) if rate_limit is not None else None
        )
        self._gate = OldestDayFirst(self.pacer) if self.pacer is not None else None

        self._lock = threading.Lock()  # counters, secrets
        self._secrets: set[str] = self._creds.secrets()
        self._auth = Authenticator(
            self._creds,
            token_url=base + TOKEN_PATH,
            send=self._send,
            retrier=self._retrier,
            redact=self._redact,
            keep_secret=self._keep_secret,
        )
        self._requests_sent = 0
        self._closed = False

    def _stoppable(self, sleep: Callable[[float], None]) -> Callable[[float], None]:
        def wait(seconds: float) -> None:
            self._stop.check()
            sleep(seconds)
            self._stop.check()

        return wait

    # -- public surface ---------------------------------------------------------------------------------
    @property
    def retry_seconds_used(self) -> float:
        """Seconds of retry waiting spent so far (counted against ``RetryPolicy.budget_seconds``)."""
        return self._retrier.seconds_used

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far, token requests and retries included."""
        with self._lock:
            return self._requests_sent

    def fetch_day(self, day: date) -> Iterator[Page]:
        """Yield every page of ``day``, following ``next_cursor`` until it is null.

        Raises the :mod:`company_activity.errors` API errors described in the module docstring, and
        UsageDataError when a page cannot be paginated (not a JSON object, wrong ``date``, ``data`` not a
        list, bad ``next_cursor``, a cursor repeating, more pages than the cap). Record-level validation
        is :func:`~.contract.parse_usage_page`'s job, so a page with bad records still reaches the lake.
        """
        iso = day.isoformat()
        cursor: str | None = None
        seen: set[str] = set()
        number = 0
        while True:
            self._stop.check()
            number += 1
            params = {"date": iso, "limit": str(self._page_size)}
            if cursor is not None:
                params["cursor"] = cursor
            what = f"page {number}"
            auth = AuthState()
            body, doc = self._retrier.run(day, what, partial(self._get_page_once, day, what, params, auth))
            fetched_at = datetime.now(UTC)
            data, next_cursor = check_envelope(doc, day, f"product-usage API {iso} {what}")
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
            if number >= self._max_pages:
                raise UsageDataError(
                    f"product-usage API {iso}: more than {self._max_pages} pages for one day (page "
                    f"{number} still has a next_cursor); the day fails rather than paging forever "
                    "(the cap is COMPANY_ACTIVITY_API_MAX_PAGES_PER_DAY)"
                )
            seen.add(next_cursor)
            cursor = next_cursor

    def close(self) -> None:
        """Release the HTTP connections (if the client made its own)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_http:
            self._http.close()
        if self._gate is not None:
            self._gate.close()

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
        mode = "oauth2 client credentials" if self._creds.oauth else "api key"
        return f"UsageApiClient({self._base_url!r}, auth={mode})"

    # -- one data request -------------------------------------------------------------------------------
    def _get_page_once(
        self, day: date, what: str, params: dict[str, str], auth: AuthState
    ) -> tuple[bytes, Any]:
        """One attempt at a page (a 401 with OAuth repeats it once with a fresh token)."""
        while True:
            headers, token = self._auth.headers(day)
            response = self._send("GET", self._usage_url, day, what, params=params, headers=headers)
            status = response.status_code
            if status == 401:
                self._auth.on_unauthorized(response, day, what, token, auth)
                continue
            auth.refreshed = False
            if status == 200:
                body = response.content
                doc = decode_json(body)
                if doc is INVALID:
                    raise ApiTransientError(
                        f"HTTP 200 with a truncated or non-JSON body ({len(body)} bytes) for {day} {what}",
                        status=200,
                    )
                return body, doc
            answers.raise_for_status(response, day, what, self._redact)

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
        """Send one paced request within the whole-request deadline; transport failures become transient.

        A stop requested meanwhile raises RunStopped (from the wait, or out of a blocked read).
        """
        self._stop.check()
        if self._gate is not None:
            self._gate.acquire(day)
        sent = self.pacer.now() if self.pacer is not None else None
        with self._lock:
            self._requests_sent += 1
        headers = {"User-Agent": USER_AGENT, **headers}
        # The httpx exception (whose request carries the credentials) is not chained to what we raise.
        failure: Exception
        try:
            with guarded(self._timeout, self._stop):
                response = self._http.request(
                    method, url, params=params, data=data, headers=headers, timeout=self._timeout
                )
        except RequestDeadlineExceeded as exc:
            failure = ApiTransientError(f"timeout: {exc} for {day} {what}")
        except httpx.UnsupportedProtocol as exc:
            failure = ConfigError(
                f"product-usage API URL {self._base_url!r} cannot be used: {self._redact(str(exc))}"
            )
        except httpx.LocalProtocolError as exc:
            failure = InvalidRequest(
                f"the request for {day} ({what}) could not be sent: {self._redact(str(exc))}", day=day
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # no connection: the URL and its origin
            detail = _ERRNO.sub("", self._redact(str(exc))) or "no detail"
            origin = f" ({self._url_origin})" if self._url_origin else ""
            failure = ApiTransientError(
                f"cannot reach the product-usage API at {self._base_url}{origin}: "
                f"{detail} ({type(exc).__name__})"
            )
        except (httpx.TransportError, httpx.DecodingError) as exc:
            detail = self._redact(str(exc)) or "no detail"
            failure = ApiTransientError(f"{type(exc).__name__} ({detail}) for {day} {what}")
        else:
            if self.pacer is not None:
                received = self.pacer.now()
                if response.status_code == 429:
                    self.pacer.on_throttled(sent, received)
                elif response.status_code < 500:
                    self.pacer.on_success(sent, received)
            return response
        raise failure

    def _keep_secret(self, secret: str) -> None:
        with self._lock:
            self._secrets.add(secret)

    def _redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text
