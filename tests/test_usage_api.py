"""The product-usage API client: pagination, auth, error mapping, retries, budget, rate limit, secrets."""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from company_activity.errors import (
    ApiError,
    ApiTransientError,
    ApiUnavailable,
    ConfigError,
    CredentialsRejected,
    DateNotAvailable,
    DateNotFinal,
    InvalidRequest,
    RunInterrupted,
    UsageDataError,
)
from company_activity.simulator.server import SimulatorOptions, SimulatorServer
from company_activity.sources import usage
from company_activity.sources.usage import auth as usage_auth
from company_activity.sources.usage_api import (
    Page,
    RetryPolicy,
    UsageApiClient,
    parse_retry_after,
    parse_usage_page,
)
from company_activity.stopping import StopSignal

BASE = "https://api.test"
DAY = date(2024, 5, 1)
CLIENT_ID = "client-abc"
SECRET = "S3CRET-client-secret-value"
API_KEY = "K3Y-api-key-value"
TOKEN_PREFIX = "TOK3N-access-token-"

Fault = httpx.Response | Exception | Callable[[httpx.Request], "httpx.Response | None"] | None


def rec(cid: str, users: int = 1, events: int = 2, **extra: Any) -> dict[str, Any]:
    return {"company_id": cid, "active_users": users, "events": events, **extra}


def json_response(status: int, doc: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(doc), headers=headers)


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return json_response(status, {"error": code}, headers)


class FakeApi:
    """A scripted product-usage API.

    ``days`` maps ISO dates to their pages (lists of records). ``usage_faults`` and ``token_faults`` are
    consumed one per request, in order, before normal handling: a Response is returned, an Exception
    raised, a callable called (returning None means "answer normally"), None answers normally.
    """

    def __init__(self, days: dict[str, list[list[dict[str, Any]]]] | None = None, *, expires_in: int = 3600):
        self.days = days if days is not None else {DAY.isoformat(): [[rec("c1"), rec("c2")], [rec("c3")]]}
        self.expires_in = expires_in
        self.usage_faults: list[Fault] = []
        self.token_faults: list[Fault] = []
        self.requests: list[httpx.Request] = []
        self.valid_tokens: set[str] = set()
        self.issued: list[str] = []
        self.token_delay = 0.0
        self._lock = threading.Lock()

    # -- inspection ------------------------------------------------------------------------------------
    @property
    def usage_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/v1/usage/daily"]

    @property
    def token_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/oauth/token"]

    def cursors(self) -> list[str | None]:
        return [r.url.params.get("cursor") for r in self.usage_requests]

    def revoke(self) -> None:
        self.valid_tokens.clear()

    # -- the server ------------------------------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            faults = self.token_faults if request.url.path == "/oauth/token" else self.usage_faults
            fault = faults.pop(0) if faults else None
        if isinstance(fault, Exception):
            raise fault
        if isinstance(fault, httpx.Response):
            return fault
        if fault is not None:
            answer = fault(request)
            if answer is not None:
                return answer
        if request.url.path == "/oauth/token":
            return self._token(request)
        if request.url.path == "/v1/usage/daily":
            return self._usage(request)
        return error(404, "not_found")

    def _token(self, request: httpx.Request) -> httpx.Response:
        if self.token_delay:
            time.sleep(self.token_delay)
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form != {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}:
            return error(401, "invalid_client")
        with self._lock:
            token = f"{TOKEN_PREFIX}{len(self.issued) + 1}"
            self.issued.append(token)
            self.valid_tokens.add(token)
        return json_response(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        )

    def _usage(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("X-API-Key")
        if not ((auth.startswith("Bearer ") and auth[7:] in self.valid_tokens) or key == API_KEY):
            return error(401, "invalid_token")
        day = request.url.params.get("date", "")
        if day not in self.days:
            return error(404, "date_not_available")
        pages = self.days[day]
        cursor = request.url.params.get("cursor")
        index = 0 if cursor is None else int(cursor.removeprefix("cur-"))
        nxt = f"cur-{index + 1}" if index + 1 < len(pages) else None
        return json_response(200, {"date": day, "data": pages[index], "next_cursor": nxt})


def make_client(
    api: FakeApi,
    *,
    oauth: bool = True,
    retry: RetryPolicy | None = None,
    waits: list[float] | None = None,
    seed: int = 1,
    rate_limit: float | None = None,
    **kwargs: Any,
) -> UsageApiClient:
    creds: dict[str, Any] = (
        {"client_id": CLIENT_ID, "client_secret": SECRET} if oauth else {"api_key": API_KEY}
    )
    return UsageApiClient(
        BASE,
        http=httpx.Client(transport=httpx.MockTransport(api)),
        retry=retry or RetryPolicy(),
        rate_limit=rate_limit,
        sleep=(waits.append if waits is not None else _no_sleep),
        rng=random.Random(seed),
        **creds,
        **kwargs,
    )


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep({seconds})")


def records_of(pages: list[Page]) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for page in pages:
        out.extend(parse_usage_page(page.body, day=DAY, source="test").records)
    return out


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


# == pagination ===========================================================================================
def test_pagination_follows_cursors_across_an_empty_middle_page() -> None:
    api = FakeApi({DAY.isoformat(): [[rec("c1"), rec("c2", 5, 9)], [], [rec("c3", 0, 0)]]})
    with make_client(api, page_size=2) as client:
        pages = list(client.fetch_day(DAY))
        assert client.requests_sent == 4  # one token + three pages
        assert client.retry_seconds_used == 0.0

    assert [p.number for p in pages] == [1, 2, 3]
    assert [p.cursor for p in pages] == [None, "cur-1", "cur-2"]
    assert [p.next_cursor for p in pages] == ["cur-1", "cur-2", None]
    assert [p.record_count for p in pages] == [2, 0, 1]
    assert pages[0].params == {"date": "2024-05-01", "limit": "2"}
    assert pages[2].params == {"date": "2024-05-01", "limit": "2", "cursor": "cur-2"}
    assert all(p.fetched_at.tzinfo is not None and p.fetched_at.utcoffset() == timedelta(0) for p in pages)
    assert records_of(pages) == [("c1", 1, 2), ("c2", 5, 9), ("c3", 0, 0)]
    assert len(api.token_requests) == 1
    assert api.cursors() == [None, "cur-1", "cur-2"]
    # the body is exactly what the server sent
    assert pages[1].body == orjson.dumps({"date": "2024-05-01", "data": [], "next_cursor": "cur-2"})


def test_an_empty_day_is_one_page_of_zero_records() -> None:
    api = FakeApi({DAY.isoformat(): [[]]})
    with make_client(api) as client:
        pages = list(client.fetch_day(DAY))
    assert len(pages) == 1
    assert (pages[0].number, pages[0].record_count, pages[0].next_cursor) == (1, 0, None)
    assert parse_usage_page(pages[0].body, day=DAY, source="x").records == []


def test_api_key_mode_sends_the_key_and_no_token_request(api: FakeApi) -> None:
    with make_client(api, oauth=False) as client:
        pages = list(client.fetch_day(DAY))
    assert [p.record_count for p in pages] == [2, 1]
    assert api.token_requests == []
    assert all(r.headers["X-API-Key"] == API_KEY for r in api.usage_requests)
    assert all("Authorization" not in r.headers for r in api.usage_requests)


def test_bearer_token_is_sent_and_reused(api: FakeApi) -> None:
    with make_client(api) as client:
        list(client.fetch_day(DAY))
        list(client.fetch_day(DAY))
    assert len(api.token_requests) == 1
    assert {r.headers["Authorization"] for r in api.usage_requests} == {f"Bearer {TOKEN_PREFIX}1"}
    token_request = api.token_requests[0]
    assert token_request.method == "POST"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_repeating_cursor_is_a_data_error() -> None:
    api = FakeApi()
    api.usage_faults = [
        json_response(200, {"date": "2024-05-01", "data": [rec("a")], "next_cursor": "x"}),
        json_response(200, {"date": "2024-05-01", "data": [rec("b")], "next_cursor": "x"}),
    ]
    with make_client(api) as client, pytest.raises(UsageDataError, match="repeats an earlier cursor"):
        list(client.fetch_day(DAY))


def test_page_for_another_date_is_a_data_error(api: FakeApi) -> None:
    api.usage_faults = [json_response(200, {"date": "2024-04-30", "data": [], "next_cursor": None})]
    with make_client(api) as client, pytest.raises(UsageDataError) as info:
        list(client.fetch_day(DAY))
    assert "2024-04-30" in str(info.value) and "2024-05-01" in str(info.value)


# == auth =================================================================================================
def test_401_mid_pagination_refreshes_the_token_and_repeats_the_same_cursor() -> None:
    api = FakeApi({DAY.isoformat(): [[rec("c1")], [rec("c2")], [rec("c3")]]})

    def revoke(_: httpx.Request) -> None:
        api.revoke()

    api.usage_faults = [None, revoke]  # the token dies just before page 2
    with make_client(api) as client:
        pages = list(client.fetch_day(DAY))
    assert [p.number for p in pages] == [1, 2, 3]
    assert [p.cursor for p in pages] == [None, "cur-1", "cur-2"]
    assert records_of(pages) == [("c1", 1, 2), ("c2", 1, 2), ("c3", 1, 2)]
    assert api.cursors() == [None, "cur-1", "cur-1", "cur-2"]  # page 2 repeated, nothing skipped
    assert len(api.token_requests) == 2
    auths = [r.headers["Authorization"] for r in api.usage_requests]
    assert auths == [f"Bearer {TOKEN_PREFIX}{n}" for n in (1, 1, 2, 2)]


def test_second_401_straight_after_a_fresh_token_is_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = FakeApi()
    api.usage_faults = [None, error(401, "invalid_token"), error(401, "invalid_token")]
    with make_client(api) as client, pytest.raises(CredentialsRejected) as info:
        list(client.fetch_day(DAY))
    exc = info.value
    assert str(exc).startswith("credentials rejected")
    assert "2024-05-01" in str(exc) and "HTTP 401 invalid_token" in str(exc) and "page 2" in str(exc)
    assert (exc.status, exc.day) == (401, DAY)
    assert len(api.token_requests) == 2
    assert api.cursors() == [None, "cur-1", "cur-1"]
    assert_no_secrets(exc, caplog)


def test_a_401_after_a_successful_retry_is_a_new_rejection() -> None:
    # 401 -> fresh token -> 200, then on the next page 401 -> fresh token -> 200: never terminal
    api = FakeApi({DAY.isoformat(): [[rec("a")], [rec("b")]]})
    api.usage_faults = [error(401, "invalid_token"), None, error(401, "invalid_token"), None]
    with make_client(api) as client:
        pages = list(client.fetch_day(DAY))
    assert len(pages) == 2
    assert len(api.token_requests) == 3


def test_401_then_503_then_401_on_the_same_page_is_two_separate_rejections() -> None:
    # page 2: 401 -> fresh token -> 503 (retried) -> 401 again -> fresh token -> 200. The 503 in between
    # ends the first rejection: the second 401 is not "straight after a fresh token" and is not terminal.
    api = FakeApi({DAY.isoformat(): [[rec("a")], [rec("b")], [rec("c")]]})
    rejected = error(401, "invalid_token")
    api.usage_faults = [None, rejected, error(503, "unavailable"), rejected]
    waits: list[float] = []
    with make_client(api, waits=waits) as client:
        pages = list(client.fetch_day(DAY))
    assert records_of(pages) == [("a", 1, 2), ("b", 1, 2), ("c", 1, 2)]
    assert api.cursors() == [None, "cur-1", "cur-1", "cur-1", "cur-1", "cur-2"]
    assert len(api.token_requests) == 3
    assert len(waits) == 1  # one back-off, for the 503
    auths = [r.headers["Authorization"] for r in api.usage_requests]
    assert auths == [f"Bearer {TOKEN_PREFIX}{n}" for n in (1, 1, 2, 2, 3, 3)]


def test_api_key_401_is_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = FakeApi()
    api.usage_faults = [error(401, "invalid_token")]
    with make_client(api, oauth=False) as client, pytest.raises(CredentialsRejected) as info:
        list(client.fetch_day(DAY))
    assert str(info.value).startswith("credentials rejected")
    assert "API key" in str(info.value) and "2024-05-01" in str(info.value)
    assert len(api.usage_requests) == 1
    assert_no_secrets(info.value, caplog)


@pytest.mark.parametrize("status", [400, 401])
def test_token_endpoint_invalid_client_is_terminal(status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = FakeApi()
    api.token_faults = [error(status, "invalid_client")]
    with make_client(api) as client, pytest.raises(CredentialsRejected) as info:
        list(client.fetch_day(DAY))
    assert f"HTTP {status} invalid_client" in str(info.value)
    assert "2024-05-01" in str(info.value)
    assert (info.value.status, info.value.day) == (status, DAY)
    assert len(api.token_requests) == 1
    assert api.usage_requests == []
    assert_no_secrets(info.value, caplog)


def test_wrong_secret_is_rejected_by_the_token_endpoint() -> None:
    api = FakeApi()
    client = UsageApiClient(
        BASE,
        client_id=CLIENT_ID,
        client_secret="wrong-secret",
        http=httpx.Client(transport=httpx.MockTransport(api)),
        rate_limit=None,
        sleep=_no_sleep,
    )
    with client, pytest.raises(CredentialsRejected, match="invalid_client"):
        list(client.fetch_day(DAY))


def test_token_endpoint_503_then_ok_is_retried() -> None:
    api = FakeApi()
    api.token_faults = [error(503, "unavailable"), httpx.ReadTimeout("timed out")]
    waits: list[float] = []
    with make_client(api, waits=waits) as client:
        pages = list(client.fetch_day(DAY))
    assert len(pages) == 2
    assert len(api.token_requests) == 3
    assert len(waits) == 2
    assert 0 <= waits[0] <= 0.5 and 0 <= waits[1] <= 1.0


def test_token_endpoint_down_gives_api_unavailable() -> None:
    api = FakeApi()
    api.token_faults = [httpx.ConnectError("refused")] * 10
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=3)
    with make_client(api, waits=waits, retry=policy) as client, pytest.raises(ApiUnavailable) as info:
        list(client.fetch_day(DAY))
    assert "access token" in str(info.value) and "ConnectError" in str(info.value)
    assert len(waits) == 2 and api.usage_requests == []


def test_token_is_refreshed_shortly_before_it_expires(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(usage_auth, "_monotonic", lambda: clock[0])
    api.expires_in = 100
    with make_client(api) as client:
        list(client.fetch_day(DAY))
        clock[0] += 85  # still valid (refresh margin: 10 s)
        list(client.fetch_day(DAY))
        assert len(api.token_requests) == 1
        clock[0] += 6  # 91 s after: inside the margin
        list(client.fetch_day(DAY))
    assert len(api.token_requests) == 2
    assert len(api.usage_requests) == 6  # three days of two pages: no 401, nothing repeated
    assert api.usage_requests[-1].headers["Authorization"] == f"Bearer {TOKEN_PREFIX}2"


def test_token_is_fetched_once_for_concurrent_days() -> None:
    days = [DAY + timedelta(days=k) for k in range(8)]
    api = FakeApi({d.isoformat(): [[rec(f"{d}-a")], [rec(f"{d}-b")]] for d in days})
    api.token_delay = 0.05
    results: dict[date, list[str]] = {}
    errors: list[BaseException] = []
    with make_client(api) as client:

        def work(d: date) -> None:
            try:
                ids = []
                for page in client.fetch_day(d):
                    ids += [r[0] for r in parse_usage_page(page.body, day=d, source="t").records]
                results[d] = ids
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(d,)) for d in days]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert client.requests_sent == 1 + 2 * len(days)
    assert errors == []
    assert len(api.token_requests) == 1
    assert results == {d: [f"{d}-a", f"{d}-b"] for d in days}


# == error mapping ========================================================================================
@pytest.mark.parametrize(
    ("response", "exc_type", "status", "code"),
    [
        (error(404, "date_not_available"), DateNotAvailable, 404, "date_not_available"),
        (error(409, "date_not_final"), DateNotFinal, 409, "date_not_final"),
        (error(400, "invalid_request"), InvalidRequest, 400, "invalid_request"),
        (error(403, "forbidden"), InvalidRequest, 403, "forbidden"),
        (httpx.Response(404, content=b"<html>not found</html>"), InvalidRequest, 404, None),
        (error(409, "conflict"), InvalidRequest, 409, "conflict"),
        (error(501, "not_implemented"), InvalidRequest, 501, "not_implemented"),
    ],
)
def test_terminal_answers_are_mapped_and_not_retried(
    response: httpx.Response, exc_type: type[ApiError], status: int, code: str | None
) -> None:
    api = FakeApi()
    api.usage_faults = [response]
    with make_client(api) as client, pytest.raises(ApiError) as info:
        list(client.fetch_day(DAY))
    exc = info.value
    assert type(exc) is exc_type
    assert (exc.day, exc.status) == (DAY, status)
    assert "2024-05-01" in str(exc)
    assert f"HTTP {status}" in str(exc)
    if code:
        assert code in str(exc)
    assert len(api.usage_requests) == 1  # not retried; no sleep happened (the sleep would assert)


def test_409_on_a_later_page_names_the_page() -> None:
    api = FakeApi()
    api.usage_faults = [None, error(409, "date_not_final")]
    with make_client(api) as client:
        pages = client.fetch_day(DAY)
        assert next(pages).number == 1
        with pytest.raises(DateNotFinal) as info:
            next(pages)
    assert "date_not_final" in str(info.value) and info.value.day == DAY


# == 429 and Retry-After ==================================================================================
@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("3", 3.0, 3.0),  # delta-seconds
        ("0", 0.2, 0.2),  # the floor applies
        ("0.05", 0.2, 0.2),
        ("120", 30.0, 30.0),  # capped at backoff_max
        ("-5", 0.2, 0.2),
        ("soon", 0.2, 0.5),  # unparseable: backoff, but at least the floor
        (None, 0.2, 0.5),  # missing: backoff, but at least the floor
    ],
)
def test_429_waits_for_retry_after(header: str | None, low: float, high: float) -> None:
    api = FakeApi()
    api.usage_faults = [error(429, "rate_limited", {"Retry-After": header} if header is not None else None)]
    waits: list[float] = []
    with make_client(api, waits=waits) as client:
        pages = list(client.fetch_day(DAY))
    assert len(pages) == 2
    assert len(waits) == 1
    assert low <= waits[0] <= high
    assert api.cursors() == [None, None, "cur-1"]


def test_429_with_http_date() -> None:
    api = FakeApi()
    when = datetime.now(UTC) + timedelta(seconds=5)
    api.usage_faults = [error(429, "rate_limited", {"Retry-After": format_datetime(when, usegmt=True)})]
    waits: list[float] = []
    with make_client(api, waits=waits) as client:
        list(client.fetch_day(DAY))
    assert len(waits) == 1
    assert 3.5 <= waits[0] <= 5.0


def test_retry_after_zero_storm_does_not_burn_time_or_fail_fast() -> None:
    api = FakeApi()
    api.usage_faults = [error(429, "rate_limited", {"Retry-After": "0"})] * 5
    waits: list[float] = []
    with make_client(api, waits=waits) as client:
        pages = list(client.fetch_day(DAY))
    assert len(pages) == 2
    assert waits == [0.2] * 5


def test_parse_retry_after() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 2 ", now=now) == 2.0
    assert parse_retry_after("Wed, 01 May 2024 12:00:09 GMT", now=now) == 9.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("nan", now=now) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after("garbage", now=now) is None
    assert parse_retry_after(None) is None


# == transient failures and backoff =======================================================================
def test_5xx_backoff_grows_within_full_jitter_bounds() -> None:
    api = FakeApi()
    api.usage_faults = [error(s, "oops") for s in (500, 502, 503, 504, 503)]
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=6, backoff_initial=0.5, backoff_max=4.0)
    with make_client(api, waits=waits, retry=policy, seed=42) as client:
        pages = list(client.fetch_day(DAY))
        assert client.retry_seconds_used == pytest.approx(sum(waits))
    assert len(pages) == 2
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0]  # min(backoff_max, initial * 2**n)
    assert len(waits) == 5
    assert all(0 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    expected = random.Random(42)
    assert waits == [expected.uniform(0, c) for c in ceilings]  # exactly full jitter with the seeded rng


@pytest.mark.parametrize(
    "fault",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadError("[Errno 104] Connection reset by peer"),
        httpx.ConnectTimeout("timed out"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.Response(200, content=b'{"date": "2024-05-01", "data": [{"company_id": "c1", "act'),
        httpx.Response(200, content=b"<html>502 Bad Gateway</html>"),
        httpx.Response(200, content=b""),
        error(408, "timeout"),
    ],
)
def test_transient_failures_are_retried(fault: Fault) -> None:
    api = FakeApi()
    api.usage_faults = [None, fault, fault]  # page 2 fails twice
    waits: list[float] = []
    with make_client(api, waits=waits) as client:
        pages = list(client.fetch_day(DAY))
        assert client.requests_sent == 1 + 4
    assert [p.number for p in pages] == [1, 2]
    assert records_of(pages) == [("c1", 1, 2), ("c2", 1, 2), ("c3", 1, 2)]
    assert api.cursors() == [None, "cur-1", "cur-1", "cur-1"]
    assert len(waits) == 2


def test_attempts_exhausted_gives_api_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="company_activity.usage_api")
    api = FakeApi()
    api.usage_faults = [error(503, "service_unavailable")] * 50
    waits: list[float] = []
    with make_client(api, waits=waits) as client, pytest.raises(ApiUnavailable) as info:
        list(client.fetch_day(DAY))
    exc = info.value
    assert (exc.day, exc.status) == (DAY, 503)
    message = str(exc)
    assert "2024-05-01" in message and "HTTP 503 service_unavailable" in message
    assert "gave up after 6 attempts" in message
    assert f"{sum(waits):.1f} s of retry waiting" in message
    assert len(api.usage_requests) == 6
    assert len(waits) == 5
    retries = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(retries) == 5
    assert all("HTTP 503" in r.getMessage() and "retrying" in r.getMessage() for r in retries)
    assert [getattr(r, "retry_wait", None) for r in retries] == waits


def test_connection_refused_forever_gives_api_unavailable() -> None:
    api = FakeApi()
    api.usage_faults = [httpx.ConnectError("[Errno 111] Connection refused")] * 50
    waits: list[float] = []
    with make_client(api, oauth=False, waits=waits) as client, pytest.raises(ApiUnavailable) as info:
        list(client.fetch_day(DAY))
    assert "ConnectError" in str(info.value) and "Connection refused" in str(info.value)
    assert info.value.status is None
    assert isinstance(info.value.__cause__, ApiTransientError)


def test_budget_exhausted_gives_api_unavailable_and_is_shared_by_the_run() -> None:
    api = FakeApi()
    api.usage_faults = [error(429, "rate_limited", {"Retry-After": "4"})] * 50
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=100, budget_seconds=10.0)
    with make_client(api, waits=waits, retry=policy) as client:
        with pytest.raises(ApiUnavailable) as info:
            list(client.fetch_day(DAY))
        assert waits == [4.0, 4.0]  # a third wait would reach 12 s > 10 s
        assert client.retry_seconds_used == 8.0
        assert "retry budget of 10 s" in str(info.value) and "2024-05-01" in str(info.value)
        assert "HTTP 429 rate_limited" in str(info.value)
        assert info.value.status == 429

        # another day of the same run: the budget is already spent, no further waiting
        other = DAY + timedelta(days=1)
        with pytest.raises(ApiUnavailable) as info2:
            list(client.fetch_day(other))
        assert waits == [4.0, 4.0]
        assert "2024-05-02" in str(info2.value)


def test_budget_bounds_virtual_time_of_a_long_outage() -> None:
    api = FakeApi()
    api.usage_faults = [error(503, "down")] * 10_000
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=10_000, backoff_initial=0.5, backoff_max=30.0, budget_seconds=900.0)
    with make_client(api, waits=waits, retry=policy) as client, pytest.raises(ApiUnavailable) as info:
        list(client.fetch_day(DAY))
    assert sum(waits) <= 900.0
    assert all(w <= 30.0 for w in waits)
    assert "retry budget of 900 s" in str(info.value)


# == secrets ==============================================================================================
SECRETS = (SECRET, API_KEY, TOKEN_PREFIX)


def assert_no_secrets(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    texts = [caplog.text]
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def _echo_secret(request: httpx.Request) -> httpx.Response:
    # a misbehaving server echoing credentials in its error code
    return error(
        400, f"bad request {request.headers.get('Authorization') or request.headers.get('X-API-Key')}"
    )


@pytest.mark.parametrize(
    ("oauth", "usage_faults", "token_faults", "exc_type"),
    [
        (True, [error(401, "x"), error(401, "x")], [], CredentialsRejected),
        (False, [error(401, "invalid_token")], [], CredentialsRejected),
        (True, [], [error(401, "invalid_client")], CredentialsRejected),
        (True, [], [lambda r: error(400, f"invalid_client {r.content.decode()}")], CredentialsRejected),
        (True, [_echo_secret], [], InvalidRequest),
        (False, [_echo_secret], [], InvalidRequest),
        (True, [error(404, "date_not_available")], [], DateNotAvailable),
        (True, [error(409, "date_not_final")], [], DateNotFinal),
        (True, [httpx.ConnectError(f"refused {TOKEN_PREFIX}1")] * 6, [], ApiUnavailable),
        (True, [], [httpx.ConnectError(f"refused {SECRET}")] * 6, ApiUnavailable),
        (False, [httpx.ReadTimeout(f"timeout {API_KEY}")] * 6, [], ApiUnavailable),
        (True, [error(503, "down")] * 6, [], ApiUnavailable),
    ],
)
def test_secrets_never_appear_in_messages_or_logs(
    caplog: pytest.LogCaptureFixture,
    oauth: bool,
    usage_faults: list[Fault],
    token_faults: list[Fault],
    exc_type: type[Exception],
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx included
    api = FakeApi()
    api.usage_faults = list(usage_faults)
    api.token_faults = list(token_faults)
    waits: list[float] = []
    with make_client(api, oauth=oauth, waits=waits) as client, pytest.raises(exc_type) as info:
        list(client.fetch_day(DAY))
    assert "2024-05-01" in str(info.value)
    assert_no_secrets(info.value, caplog)
    assert SECRET not in repr(client) and API_KEY not in repr(client)


# == configuration ========================================================================================
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "no product-usage API credentials"),
        ({"client_id": "x"}, "CLIENT_SECRET is not"),
        ({"client_secret": "x", "api_key": "k"}, "CLIENT_ID is not"),
        ({"api_key": "k", "page_size": 0}, "page size"),
        ({"api_key": "k", "page_size": 1001}, "page size"),
        ({"api_key": "k", "rate_limit": 0}, "rate limit"),
    ],
)
def test_bad_configuration_is_a_config_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        UsageApiClient(BASE, **kwargs)


def test_bad_base_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must start with http"):
        UsageApiClient("ftp://x", api_key="k")


def test_bad_retry_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigError):
        RetryPolicy(budget_seconds=-1)


def test_client_credentials_win_over_an_api_key(api: FakeApi) -> None:
    client = UsageApiClient(
        BASE,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        api_key=API_KEY,
        http=httpx.Client(transport=httpx.MockTransport(api)),
        rate_limit=None,
    )
    with client:
        list(client.fetch_day(DAY))
    assert len(api.token_requests) == 1
    assert all("X-API-Key" not in r.headers for r in api.usage_requests)


# == rate limiting ========================================================================================
def test_rate_limiter_paces_requests() -> None:
    api = FakeApi({DAY.isoformat(): [[rec(f"c{k}")] for k in range(30)]})
    with make_client(api, oauth=False, rate_limit=20.0) as client:
        started = time.monotonic()
        pages = list(client.fetch_day(DAY))
        elapsed = time.monotonic() - started
    assert len(pages) == 30
    assert elapsed >= 0.95  # 20 per second: the 21st request waits for the window to move
    assert elapsed < 5.0


def test_rate_limiter_is_shared_by_threads_and_token_requests() -> None:
    days = [DAY + timedelta(days=k) for k in range(4)]
    api = FakeApi({d.isoformat(): [[rec("a")]] * 3 for d in days})
    # 4 days x 3 pages + 1 token = 13 requests at 10/s: at least one extra second
    with make_client(api, rate_limit=10.0) as client:
        started = time.monotonic()
        threads = [threading.Thread(target=lambda d=d: list(client.fetch_day(d))) for d in days]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        assert client.requests_sent == 13
    assert elapsed >= 0.95
    assert len(api.token_requests) == 1


# == parse_usage_page =====================================================================================
def body(data: Any, *, day: str = "2024-05-01", next_cursor: Any = None, **top: Any) -> bytes:
    return orjson.dumps({"date": day, "data": data, "next_cursor": next_cursor, **top})


def test_parse_returns_records_and_reports_extra_fields() -> None:
    parsed = parse_usage_page(
        body(
            [rec("a", 3, 4), rec("b", 0, 0, plan="pro"), rec("c", 1, 1, plan="x", region="eu")],
            next_cursor="n",
        ),
        day=DAY,
        source="raw/page-00001.json",
    )
    assert parsed.records == [("a", 3, 4), ("b", 0, 0), ("c", 1, 1)]
    assert parsed.extra_fields == frozenset({"plan", "region"})
    assert parsed.next_cursor == "n"


def test_parse_keeps_duplicates_for_the_caller_to_judge() -> None:
    parsed = parse_usage_page(body([rec("a"), rec("a")]), day=DAY, source="s")
    assert parsed.records == [("a", 1, 2), ("a", 1, 2)]
    assert parsed.extra_fields == frozenset()


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"active_users": 1, "events": 2}, "record 1: missing field 'company_id'"),
        ({"company_id": "x", "events": 2}, "record 1 (company_id \"x\"): missing field 'active_users'"),
        ({"company_id": "x"}, "missing fields 'active_users', 'events'"),
        (rec("x", users="3"), "field 'active_users' must be an integer >= 0, got string \"3\""),  # type: ignore[arg-type]
        (rec("x", events=2.0), "field 'events' must be an integer >= 0, got number 2.0"),  # type: ignore[arg-type]
        (rec("x", users=True), "field 'active_users' must be an integer >= 0, got boolean true"),
        (rec("x", events=False), "field 'events' must be an integer >= 0, got boolean false"),
        (rec("x", users=-1), "field 'active_users' must be an integer >= 0, got integer -1"),
        (rec("x", events=None), "field 'events' must be an integer >= 0, got null null"),  # type: ignore[arg-type]
        (rec(""), "record 1: field 'company_id' must be a non-empty string, got string \"\""),
        (rec("  "), "field 'company_id' must be a non-empty string"),
        (
            {"company_id": 7, "active_users": 1, "events": 1},
            "field 'company_id' must be a non-empty string, got integer 7",
        ),
        (["x", 1, 2], "record 1 must be a JSON object, got array"),
    ],
)
def test_parse_rejects_bad_records_precisely(record: Any, fragment: str) -> None:
    with pytest.raises(UsageDataError) as info:
        parse_usage_page(body([rec("ok"), record]), day=DAY, source="raw/page-00003.json")
    message = str(info.value)
    assert message.startswith("raw/page-00003.json: ")
    assert fragment in message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (body([], day="2024-04-30"), "field 'date' is \"2024-04-30\", expected '2024-05-01'"),
        (orjson.dumps({"data": [], "next_cursor": None}), "field 'date' is missing"),
        (orjson.dumps({"date": "2024-05-01", "next_cursor": None}), "field 'data' is missing"),
        (body({"a": 1}), "field 'data' must be an array, got object"),
        (orjson.dumps({"date": "2024-05-01", "data": []}), "field 'next_cursor' is missing"),
        (body([], next_cursor=5), "field 'next_cursor' must be a string or null, got integer 5"),
        (b"[]", "the body is not a JSON object (got array)"),
        (b'{"date": "2024-05-01", "data": [', "the body is not valid JSON"),
    ],
)
def test_parse_rejects_bad_envelopes(raw: bytes, fragment: str) -> None:
    with pytest.raises(UsageDataError) as info:
        parse_usage_page(raw, day=DAY, source="src")
    assert str(info.value).startswith("src: ")
    assert fragment in str(info.value)


# == integration with the built-in simulator (real loopback HTTP) =========================================
SIM_TODAY = date(2026, 2, 1)
SIM_DAY = date(2026, 1, 25)


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., Any]]:
    servers: list[Any] = []

    def start(**options: Any) -> Any:
        server = SimulatorServer(SimulatorOptions(today=SIM_TODAY, **options))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _sim_client(sim: Any, *, oauth: bool, waits: list[float] | None = None, **kwargs: Any) -> UsageApiClient:
    opts = sim.options
    creds: dict[str, Any] = (
        {"client_id": opts.client_id, "client_secret": opts.client_secret}
        if oauth
        else {"api_key": opts.api_key}
    )
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("timeout", 5.0)
    if waits is not None:
        kwargs["sleep"] = waits.append
    return UsageApiClient(
        sim.url,
        rng=random.Random(3),
        **creds,
        **kwargs,
    )


def _fetch_all(client: UsageApiClient, day: date) -> tuple[list[Page], list[tuple[str, int, int]]]:
    pages = list(client.fetch_day(day))
    records: list[tuple[str, int, int]] = []
    for page in pages:
        records += parse_usage_page(page.body, day=day, source=f"page {page.number}").records
    return pages, records


def _expected(sim: Any, day: date) -> list[tuple[str, int, int]]:
    return [(r.company_id, r.active_users, r.events) for r in sim.data.usage(day)]


@pytest.mark.parametrize("oauth", [True, False], ids=["oauth", "api-key"])
def test_simulator_day_matches_its_data(sim_factory: Callable[..., Any], oauth: bool) -> None:
    sim = sim_factory(companies=300)
    expected = _expected(sim, SIM_DAY)
    assert expected, "the simulator should have activity on the chosen day"
    with _sim_client(sim, oauth=oauth, page_size=37) as client:
        pages, records = _fetch_all(client, SIM_DAY)
    assert sorted(records) == sorted(expected)
    assert len(records) == len(expected)
    full_pages = -(-len(expected) // 37)
    assert len(pages) in (full_pages, full_pages + 1)  # a server may end with an empty page
    assert [p.record_count for p in pages[: full_pages - 1]] == [37] * (full_pages - 1)
    assert pages[-1].next_cursor is None
    assert sum(p.record_count for p in pages) == len(expected)
    assert sim.stats.tokens_issued == (1 if oauth else 0)


def test_simulator_faults_are_survived(sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(
        companies=400,
        seed=11,
        error_rate=0.1,
        rate_limited_rate=0.05,
        retry_after="zero",
        truncate_rate=0.05,
        reset_rate=0.05,
        revoke_rate=0.05,
    )
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=12)
    with _sim_client(sim, oauth=True, waits=waits, page_size=20, retry=policy) as client:
        _, records = _fetch_all(client, SIM_DAY)
    assert sorted(records) == sorted(_expected(sim, SIM_DAY))
    assert waits, "the faults should have caused retries"
    assert sim.stats.count(status=200) >= 1


def test_simulator_token_revoked_mid_pagination(sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(companies=300)
    records: list[tuple[str, int, int]] = []
    with _sim_client(sim, oauth=True, waits=[], page_size=25) as client:
        for page in client.fetch_day(SIM_DAY):
            records += parse_usage_page(page.body, day=SIM_DAY, source="p").records
            if page.number == 2:
                sim.revoke_all_tokens()
    assert sorted(records) == sorted(_expected(sim, SIM_DAY))
    assert len(records) == len(_expected(sim, SIM_DAY))  # nothing skipped or duplicated
    assert sim.stats.tokens_issued == 2
    assert sim.stats.count(status=401) == 1


def test_simulator_terminal_answers(sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(companies=20)
    with _sim_client(sim, oauth=True, waits=[]) as client:
        with pytest.raises(DateNotFinal) as final:
            list(client.fetch_day(SIM_TODAY))
        with pytest.raises(DateNotAvailable) as lost:
            list(client.fetch_day(SIM_TODAY - timedelta(days=60)))
    assert final.value.day == SIM_TODAY and final.value.status == 409
    assert lost.value.status == 404
    wrong = UsageApiClient(sim.url, client_id=sim.options.client_id, client_secret="nope", rate_limit=None)
    with wrong, pytest.raises(CredentialsRejected):
        list(wrong.fetch_day(SIM_DAY))


def test_simulator_rate_limit_is_respected(sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(companies=200, rate_limit=20.0)
    waits: list[float] = []
    with _sim_client(sim, oauth=False, waits=waits, page_size=8, rate_limit=20.0) as client:
        _, records = _fetch_all(client, SIM_DAY)
    assert sorted(records) == sorted(_expected(sim, SIM_DAY))
    assert sim.stats.count(status=429) == 0
    assert waits == []


# == issue 9: bounded time, prompt stop, adaptive pacing (against the real simulator) =====================
class _NotedStop(StopSignal):
    """The run's stop, whose stoppable wait (what the client's retries and pacer use) notes being entered."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.waiting = threading.Event()

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.waiting.set()
        super().sleep(seconds)


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_dripping_body_trips_the_whole_request_deadline(sim_factory: Callable[..., Any]) -> None:
    # ~100 bytes at one byte per 0.2 s: each read returns within httpx's per-read timeout, the whole
    # body would take ~20 s; the whole-request deadline (1 s) trips, and the retry trips it again
    sim = sim_factory(companies=5, drip_interval=0.2)
    policy = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.01)
    with (
        _sim_client(sim, oauth=False, page_size=1, timeout=1.0, retry=policy) as client,
        pytest.raises(ApiUnavailable) as info,
    ):
        list(client.fetch_day(SIM_DAY))
    message = str(info.value)
    assert "gave up after 2 attempts" in message
    assert "timeout: the whole request took longer than 1 s" in message
    assert _wait_for(lambda: sim.stats.aborted >= 2)  # the client closed both connections


def test_an_endless_cursor_fails_the_day_at_the_page_cap(sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(companies=30, endless_cursor=True)
    with (
        _sim_client(sim, oauth=False, page_size=10, max_pages_per_day=40) as client,
        pytest.raises(UsageDataError) as info,
    ):
        pages = 0
        for _ in client.fetch_day(SIM_DAY):
            pages += 1
    assert pages == 40
    assert f"product-usage API {SIM_DAY.isoformat()}: more than 40 pages for one day" in str(info.value)
    assert sim.stats.count(path="/v1/usage/daily") == 40  # not one request beyond the cap


def test_the_default_page_cap_is_far_above_a_real_day() -> None:
    assert usage.DEFAULT_MAX_PAGES_PER_DAY >= 20_000


def test_a_stop_aborts_a_blocked_read_and_closes_the_connection(sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(companies=5, drip_interval=0.5)  # a page takes a minute; the deadline is 60 s
    stop = StopSignal()
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            with _sim_client(sim, oauth=False, page_size=5, timeout=60.0, stop=stop) as client:
                list(client.fetch_day(SIM_DAY))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    # the server counts its answer just before it starts dripping it: the client is now blocked reading
    assert _wait_for(lambda: sim.stats.count(status=200) == 1)
    stop.request("SIGTERM")
    worker.join(10)
    assert not worker.is_alive(), "the stop did not abort the blocked read"
    assert len(outcome) == 1 and isinstance(outcome[0], RunInterrupted), outcome
    assert "SIGTERM" in str(outcome[0])
    assert _wait_for(lambda: sim.stats.aborted == 1)  # the server saw the connection closed
    assert sim.stats.count(status=200) == 0


def test_a_stop_interrupts_a_retry_after_wait_and_is_checked_between_pages(
    sim_factory: Callable[..., Any],
) -> None:
    sim = sim_factory(companies=60, rate_limited_rate=1.0, retry_after_seconds=30)
    stop = _NotedStop()

    # The stop is sent once the client is inside the Retry-After wait, not on the server counting its 429:
    # that count comes just before the answer goes out, so a stop then aborts the client's read, the answer
    # is never delivered and the server counts it aborted (it tested the read, not the wait).
    def stop_once_the_client_waits() -> None:
        stop.waiting.wait(30)
        stop.request("SIGINT")

    threading.Thread(target=stop_once_the_client_waits, daemon=True).start()
    with (
        _sim_client(sim, oauth=False, stop=stop) as client,
        pytest.raises(RunInterrupted, match="SIGINT"),
    ):
        list(client.fetch_day(SIM_DAY))
    assert stop.waits == [30.0]  # Retry-After honoured in full ...
    assert sim.stats.count(status=429) == 1  # ... and interrupted during the 30 s wait, not after it
    # between pages: a stop after page 1 ends the day before page 2 is asked
    sim = sim_factory(companies=60)
    stop = StopSignal()
    with _sim_client(sim, oauth=False, page_size=5, stop=stop) as client:
        pages = client.fetch_day(SIM_DAY)
        next(pages)
        stop.request("SIGINT")
        with pytest.raises(RunInterrupted):
            next(pages)
    assert sim.stats.count(path="/v1/usage/daily") == 1


def test_a_client_at_the_strict_servers_rate_gets_almost_no_429(sim_factory: Callable[..., Any]) -> None:
    """Paced evenly at R, a client does not burst past a server that refuses any burst at R."""
    rate = 40.0
    sim = sim_factory(companies=600, rate_limit=rate, rate_limit_strict=True)  # ~80 pages of 4
    with _sim_client(sim, oauth=False, page_size=4, rate_limit=rate) as client:
        pages, records = _fetch_all(client, SIM_DAY)
    assert sorted(records) == sorted(_expected(sim, SIM_DAY))
    assert len(pages) >= 70
    assert sim.stats.count(status=429) < 0.05 * len(pages)


def test_429s_lower_the_rate_which_recovers_gradually() -> None:
    clock = [0.0]
    sent: list[float] = []

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    pacer = usage.AdaptivePacer(10.0, floor=0.5, sleep=sleep, clock=lambda: clock[0])
    for _ in range(5):
        pacer.try_acquire()
        sent.append(clock[0])
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(gap >= 0.1 for gap in gaps) and max(gaps) < 0.11  # evenly: one per 1/R, no burst
    pacer.on_throttled()
    assert pacer.rate == 5.0
    for _ in range(10):
        pacer.on_throttled()
    assert pacer.rate == 0.5  # the floor
    rates = []
    for _ in range(25):
        pacer.on_success()
        rates.append(pacer.rate)
    assert rates[0] == pytest.approx(1.0)  # additive: + R/20 per success
    assert rates == sorted(rates) and rates.index(10.0) == 18  # back to R in 19 steps of 0.5, not at once
    with pytest.raises(ConfigError):
        usage.AdaptivePacer(0.0)


def test_a_429_from_the_server_slows_the_client_down(api: FakeApi) -> None:
    api.usage_faults = [error(429, "rate_limited", {"Retry-After": "0"})]
    waits: list[float] = []
    with make_client(api, oauth=False, waits=waits, rate_limit=1000.0) as client:
        pages = client.fetch_day(DAY)
        next(pages)  # the 429, its retry, then page 1
        assert client.pacer is not None and client.pacer.rate == pytest.approx(550.0)  # 500 + one success
        list(pages)
        assert client.pacer.rate == pytest.approx(600.0)
    assert len(waits) == 1  # Retry-After honoured (floored) by the retry loop


# == issue 9: numbers and ids no warehouse can hold ========================================================
@pytest.mark.parametrize(
    ("raw_value", "fragment"),
    [
        (b"1e400", "field 'active_users' must be an integer >= 0, got number 1e400"),
        (b"1.5", "field 'active_users' must be an integer >= 0, got number 1.5"),
        (b"true", "field 'active_users' must be an integer >= 0, got boolean true"),
        (b"9223372036854775808", "field 'active_users' is 9223372036854775808, more than a 64-bit count"),
        (b"123456789012345678901234567890", "field 'active_users' must be an integer >= 0, got number 1.23"),
        (b"9223372036854775807", None),
    ],
)
def test_counts_are_64_bit_and_a_number_out_of_range_names_field_and_company(
    raw_value: bytes, fragment: str | None
) -> None:
    raw = (
        b'{"date": "2024-05-01", "next_cursor": null, "data": ['
        b'{"company_id": "ok", "active_users": 1, "events": 1},'
        b'{"company_id": "C\\"42", "active_users": ' + raw_value + b', "events": 2}]}'
    )
    if fragment is None:
        assert parse_usage_page(raw, day=DAY, source="p").active_users == [1, 2**63 - 1]
        return
    with pytest.raises(UsageDataError) as info:
        parse_usage_page(raw, day=DAY, source="raw/page-00002.json")
    assert str(info.value).startswith('raw/page-00002.json: record 1 (company_id "C\\"42"): ')
    assert fragment in str(info.value)


def test_a_number_orjson_refuses_is_a_page_not_a_truncated_body(api: FakeApi) -> None:
    """1e400 is valid JSON: the page is yielded (to the lake), and parsing names the field; no retry."""
    huge = (
        b'{"date": "2024-05-01", "next_cursor": null, '
        b'"data": [{"company_id": "c9", "active_users": 1e400, "events": 1}]}'
    )
    api.usage_faults = [httpx.Response(200, content=huge)]
    with make_client(api, oauth=False) as client:  # no sleep allowed: a retry would fail the test
        (page,) = list(client.fetch_day(DAY))
    assert page.body == huge
    with pytest.raises(UsageDataError, match=r"record 0 \(company_id \"c9\"\): field 'active_users' must be"):
        usage.parse_usage_doc(page.doc, day=DAY, source="p")


@pytest.mark.parametrize(
    ("company_id", "fragment"),
    [
        ("C\x00x", "field 'company_id' contains a NUL character, which a warehouse cannot store"),
        ("C" * 257, "field 'company_id' is 257 characters long, more than the 256 a company id may have"),
        ("C" * 4_000_000, "field 'company_id' is 4000000 characters long"),
        ("C\ud800", "field 'company_id' is not valid Unicode"),
    ],
    ids=["nul", "257", "4MB", "surrogate"],
)
def test_a_company_id_no_warehouse_can_store_is_named(company_id: str, fragment: str) -> None:
    raw = json.dumps(
        {"date": "2024-05-01", "next_cursor": None, "data": [rec("ok"), rec(company_id)]}
    ).encode()
    with pytest.raises(UsageDataError) as info:
        parse_usage_page(raw, day=DAY, source="src")
    message = str(info.value)
    assert message.startswith("src: record 1 (company_id ")
    assert fragment in message
    assert len(message) < 300  # an excerpt, never the whole value
    assert parse_usage_page(body([rec("C" * 256)]), day=DAY, source="s").company_ids == ["C" * 256]


def test_the_pacer_learns_a_strict_servers_needs_from_its_429s() -> None:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    def acquire() -> float:
        pacer.try_acquire()
        return clock[0]

    pacer = usage.AdaptivePacer(10.0, sleep=sleep, clock=lambda: clock[0])
    interval = pacer.interval()
    assert acquire() == 0.0
    pacer.on_success(0.0, 0.05)  # the first answer paid for the connection: count from it
    assert acquire() == pytest.approx(0.05 + interval)
    sent = clock[0]
    pacer.on_success(sent, sent + 0.08)  # a slow answer: the next slot still comes one interval on
    assert acquire() == pytest.approx(sent + interval)
    pacer.on_throttled()  # a strict server: rate halved, margin widened (+1 %)
    assert pacer.rate == 5.0 and pacer.interval() == pytest.approx((1.03 / 5.0) + 0.002)
    for _ in range(10):
        pacer.on_success()
    assert pacer.rate == 10.0 and pacer.interval() == pytest.approx(1.029 / 10.0 + 0.002)
    clock[0] += 1.0  # Retry-After
    sent = acquire()
    pacer.on_success(sent, sent + 0.31)  # after a 429, a slow answer may have been counted late
    assert acquire() == pytest.approx(sent + 0.31 - 0.05 + pacer.interval(), abs=0.001)


def test_a_stop_interrupts_a_rate_limit_wait(api: FakeApi) -> None:
    stop = _NotedStop()

    def stop_once_page_2_waits_for_its_slot() -> None:  # not a fixed delay: a loaded machine may be slower
        stop.waiting.wait(30)
        stop.request("SIGTERM")

    threading.Thread(target=stop_once_page_2_waits_for_its_slot, daemon=True).start()
    with (
        make_client(api, oauth=False, rate_limit=0.1, rate_floor=0.1, stop=stop) as client,
        pytest.raises(RunInterrupted, match="SIGTERM"),
    ):
        list(client.fetch_day(DAY))  # page 2 would wait 10 s for its slot
    assert len(stop.waits) == 1 and stop.waits[0] > 5  # the one wait: page 2's slot, ~10 s away
    assert len(api.usage_requests) == 1
