"""The product-usage API simulator and the synthetic data: real HTTP over loopback with httpx."""

from __future__ import annotations

import base64
import csv
import io
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from company_activity.simulator import (
    CRM_COLUMNS,
    CrmRecord,
    SimulatorOptions,
    SimulatorServer,
    SyntheticData,
    UsageRecord,
    serve,
    simulate_api,
)
from company_activity.simulator import cli as simulator_cli
from company_activity.storage import Lake

TODAY = date(2026, 3, 10)
DAY = date(2026, 3, 2)  # a Monday, within retention of TODAY
USAGE = "/v1/usage/daily"
KEY = {"X-API-Key": "demo-key"}


# -- helpers and fixtures -------------------------------------------------------------------------------
def as_dicts(records: list[UsageRecord]) -> list[dict[str, Any]]:
    return [{"company_id": r.company_id, "active_users": r.active_users, "events": r.events} for r in records]


def fetch_pages(
    client: httpx.Client, day: date, *, limit: int | None = None, headers: dict[str, str] | None = None
) -> list[list[dict[str, Any]]]:
    """Every page of ``day``, following next_cursor."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"date": day.isoformat()}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get(USAGE, params=params, headers=headers or KEY)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["date"] == day.isoformat()
        assert limit is None or len(body["data"]) <= limit
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 10_000


def fetch_all(client: httpx.Client, day: date, **kwargs: Any) -> list[dict[str, Any]]:
    return [record for page in fetch_pages(client, day, **kwargs) for record in page]


def get_token(client: httpx.Client, client_id: str = "demo-client", secret: str = "demo-secret") -> str:
    response = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cursor_for(day: date, position: int) -> str:
    return base64.urlsafe_b64encode(f"{day.isoformat()}:{position}:0".encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorOptions(today=TODAY)) as server:
        yield server


@pytest.fixture
def client(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        yield c


@pytest.fixture
def make_sim() -> Iterator[Any]:
    """A factory of started servers with the given options (stopped at the end of the test)."""
    servers: list[SimulatorServer] = []

    def make(**kwargs: Any) -> tuple[SimulatorServer, httpx.Client]:
        kwargs.setdefault("today", TODAY)
        server = SimulatorServer(SimulatorOptions(**kwargs))
        server.start()
        servers.append(server)
        c = httpx.Client(base_url=server.url, timeout=10)
        clients.append(c)
        return server, c

    clients: list[httpx.Client] = []
    yield make
    for c in clients:
        c.close()
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def world() -> SyntheticData:
    return SyntheticData()


@pytest.fixture(scope="module")
def history(world: SyntheticData) -> dict[date, dict[str, UsageRecord]]:
    """120 days of usage of the default world, by day and company id."""
    start = date(2026, 1, 1)
    return {
        start + timedelta(k): {r.company_id: r for r in world.usage(start + timedelta(k))} for k in range(120)
    }


# -- the synthetic data ---------------------------------------------------------------------------------
def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = SyntheticData(seed=7), SyntheticData(seed=7), SyntheticData(seed=8)
    for day in (date(2026, 1, 5), date(2026, 6, 30), date(2025, 12, 1)):
        assert a.usage(day) == b.usage(day)
        assert a.crm_csv(day) == b.crm_csv(day)
        assert a.usage(day) != c.usage(day)
        assert a.crm_snapshot(day) != c.crm_snapshot(day)
    # no hidden state: asking for other days first changes nothing
    fresh = SyntheticData(seed=7)
    assert fresh.usage(date(2026, 6, 30)) == a.usage(date(2026, 6, 30))


def test_usage_is_sorted_active_and_plausible(world: SyntheticData) -> None:
    records = world.usage(DAY)
    ids = [r.company_id for r in records]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(r.company_id.startswith("C") and len(r.company_id) == 8 for r in records)
    assert all(r.active_users >= 0 and r.events >= 0 for r in records)
    assert all(r.active_users > 0 or r.events > 0 for r in records)
    assert max(r.active_users for r in records) <= 600
    for r in records:
        if r.active_users > 0:
            assert 4 * r.active_users <= r.events <= 51 * r.active_users


def test_iter_usage_from_is_the_suffix_of_usage(world: SyntheticData) -> None:
    records = world.usage(DAY)
    for start in (0, 1, 57, 199, 200, 5000):
        suffix = list(world.iter_usage_from(DAY, start))
        assert [r for _, r in suffix] == [r for r in records if int(r.company_id[1:]) >= start]
        assert all(r.company_id == f"C{i:07d}" for i, r in suffix)
    # the single-company path agrees with the loop that serves pages
    by_id = {r.company_id: r for r in records}
    for index in range(200):
        assert world.usage_of(index, DAY) == by_id.get(f"C{index:07d}")


def test_population_has_exact_proportions(world: SyntheticData) -> None:
    kinds = Counter(world.kind(i) for i in range(200))
    assert kinds == {
        "steady": 100,
        "sporadic": 30,
        "silent_spells": 30,
        "joiner": 15,
        "renamer": 10,
        "never_active": 10,
        "usage_only": 5,
    }
    assert Counter(SyntheticData(seed=99).kind(i) for i in range(200)) == kinds
    assert [world.kind(i) for i in range(200)] != [SyntheticData(seed=99).kind(i) for i in range(200)]


def test_weekends_are_clearly_lower(history: dict[date, dict[str, UsageRecord]]) -> None:
    weekday_users = [sum(r.active_users for r in v.values()) for d, v in history.items() if d.weekday() < 5]
    weekend_users = [sum(r.active_users for r in v.values()) for d, v in history.items() if d.weekday() >= 5]
    weekday_active = [len(v) for d, v in history.items() if d.weekday() < 5]
    weekend_active = [len(v) for d, v in history.items() if d.weekday() >= 5]
    assert statistics.mean(weekend_users) < 0.5 * statistics.mean(weekday_users)
    assert statistics.mean(weekend_active) < 0.85 * statistics.mean(weekday_active)
    assert max(weekend_users) < min(weekday_users)


def test_steady_and_sporadic_activity(
    world: SyntheticData, history: dict[date, dict[str, UsageRecord]]
) -> None:
    weekdays = [v for d, v in history.items() if d.weekday() < 5 and d >= date(2026, 3, 1)]
    for index in range(200):
        cid = f"C{index:07d}"
        share = sum(cid in v for v in weekdays) / len(weekdays)
        kind = world.kind(index)
        if kind in ("steady", "renamer", "usage_only"):
            assert share > 0.85, (cid, kind, share)
        elif kind == "sporadic":
            assert 0.05 < share < 0.55, (cid, share)
        elif kind == "never_active":
            assert share == 0


def test_every_14_day_window_has_churn_risk_from_silent_spells(
    world: SyntheticData, history: dict[date, dict[str, UsageRecord]]
) -> None:
    """Churn risk as company-daily-activity.md defines it, with the window's first day as first usage day."""
    days = sorted(history)
    never_active = {f"C{i:07d}" for i in range(200) if world.kind(i) == "never_active"}
    for first in days[: len(days) - 14]:
        window = [first + timedelta(k) for k in range(14)]
        at_risk: set[str] = set()
        for d in window[6:]:
            span = [d - timedelta(k) for k in range(7)]
            had_row = {f"C{i:07d}" for i in range(200) if world.in_crm(i, span[-1])} | set(history[span[-1]])
            for cid in had_row - never_active:
                if all(cid not in history[s] for s in span):
                    at_risk.add(cid)
        assert len(at_risk) >= 5, (first, sorted(at_risk))


def test_silent_spells_are_7_days_or_longer(
    world: SyntheticData, history: dict[date, dict[str, UsageRecord]]
) -> None:
    days = sorted(history)
    for index in range(200):
        if world.kind(index) != "silent_spells":
            continue
        active = "".join("x" if f"C{index:07d}" in history[d] else "." for d in days)
        assert "." * 8 in active, active


def test_joiners_are_absent_before_their_join_day(
    world: SyntheticData, history: dict[date, dict[str, UsageRecord]]
) -> None:
    joiners = [i for i in range(200) if world.kind(i) == "joiner"]
    assert len(joiners) == 15
    join_days = set()
    for index in joiners:
        join = world.join_day(index)
        assert join is not None and world.epoch < join <= world.epoch + timedelta(days=42)
        join_days.add(join)
        cid = f"C{index:07d}"
        before, after = join - timedelta(days=1), join + timedelta(days=30)
        assert not world.in_crm(index, before)
        assert cid not in {r.company_id for r in world.crm_snapshot(before)}
        assert cid in {r.company_id for r in world.crm_snapshot(join)}
        assert all(cid not in v for d, v in history.items() if d < join)
        assert any(cid in history[join + timedelta(k)] for k in range(20))
        record = next(r for r in world.crm_snapshot(after) if r.company_id == cid)
        assert record.last_contact_at is None or record.last_contact_at.date() >= join
    assert len(join_days) >= 8
    assert world.join_day(next(i for i in range(200) if world.kind(i) == "steady")) is None


def test_renames_usage_only_and_never_active(
    world: SyntheticData, history: dict[date, dict[str, UsageRecord]]
) -> None:
    first, last = date(2026, 1, 1), date(2026, 4, 30)
    names_first = {r.company_id: r.name for r in world.crm_snapshot(first)}
    names_last = {r.company_id: r.name for r in world.crm_snapshot(last)}
    renamed = {cid for cid in names_first if cid in names_last and names_first[cid] != names_last[cid]}
    renamers = {f"C{i:07d}" for i in range(200) if world.kind(i) == "renamer"}
    assert renamed == renamers and len(renamed) == 10
    # a rename holds from its day on: day by day, a renamer's name changes at most once within 2 weeks
    cid = sorted(renamers)[0]
    series = [
        next(r.name for r in world.crm_snapshot(first + timedelta(k)) if r.company_id == cid)
        for k in range(14)
    ]
    assert len({name for name in series}) <= 2

    ever_active = set().union(*history.values())
    in_crm_ever = set(names_first) | set(names_last)
    usage_only = ever_active - in_crm_ever
    assert usage_only == {f"C{i:07d}" for i in range(200) if world.kind(i) == "usage_only"}
    assert len(usage_only) == 5  # 2.5 %
    never_active = in_crm_ever - ever_active
    assert never_active == {f"C{i:07d}" for i in range(200) if world.kind(i) == "never_active"}


def test_crm_csv_round_trips_to_the_snapshot(world: SyntheticData) -> None:
    for day in (DAY, date(2026, 1, 1), date(2026, 8, 15)):
        raw = world.crm_csv(day)
        text = raw.decode("utf-8")
        assert text.startswith("company_id,name,country,industry_tag,last_contact_at\r\n")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert tuple(rows[0]) == CRM_COLUMNS
        parsed = [
            CrmRecord(
                company_id=cid,
                name=name or None,
                country=country or None,
                industry_tag=industry or None,
                last_contact_at=_parse_contact(contact),
            )
            for cid, name, country, industry, contact in rows[1:]
        ]
        assert parsed == world.crm_snapshot(day)
    names = [r.name or "" for r in world.crm_snapshot(DAY)]
    assert any("," in n for n in names) and any('"' in n for n in names) and any("\n" in n for n in names)
    assert any(n.startswith("=HYPERLINK") for n in names)
    assert all(n == n.strip() for n in names)
    snapshot = world.crm_snapshot(DAY)
    assert any(r.country is None for r in snapshot) and any(r.industry_tag is None for r in snapshot)
    assert any(r.last_contact_at is None for r in snapshot)
    assert all(r.last_contact_at is None or r.last_contact_at.tzinfo == UTC for r in snapshot)
    assert all(r.last_contact_at is None or r.last_contact_at.date() <= DAY for r in snapshot)
    contacts = [row[4] for row in csv.reader(io.StringIO(world.crm_csv(DAY).decode(), newline=""))][1:]
    assert any(c.endswith("Z") for c in contacts)
    assert any(c.endswith("+02:00") for c in contacts) and any(c.endswith("-05:00") for c in contacts)
    assert any(len(c) == 10 for c in contacts)  # a date alone
    assert any(len(c) == 19 for c in contacts)  # no offset


def _parse_contact(text: str) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def test_write_crm_snapshots(tmp_path: Any, world: SyntheticData) -> None:
    lake = Lake(str(tmp_path / "lake"))
    days = [DAY, DAY + timedelta(days=1)]
    paths = world.write_crm_snapshots(lake, days)
    assert paths == ["crm/crm_daily_2026-03-02.csv", "crm/crm_daily_2026-03-03.csv"]
    assert lake.read_bytes(paths[1]) == world.crm_csv(days[1])
    other = world.write_crm_snapshots(lake, [DAY], template="in/{date}/crm.csv")
    assert other == ["in/2026-03-02/crm.csv"] and lake.exists("in/2026-03-02/crm.csv")


# -- pagination -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 7, 500, 1000, None])
def test_pages_add_up_to_the_days_usage(
    sim: SimulatorServer, client: httpx.Client, limit: int | None
) -> None:
    expected = as_dicts(sim.data.usage(DAY))
    pages = fetch_pages(client, DAY, limit=limit)
    assert [r for page in pages for r in page] == expected
    page_size = limit or 500
    assert len(pages) == max(1, -(-len(expected) // page_size))
    assert all(len(page) == page_size for page in pages[:-1])


def test_pages_of_a_weekend_day_and_a_cursor_is_opaque_but_stable(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    sunday = date(2026, 3, 8)
    assert fetch_all(client, sunday, limit=13) == as_dicts(sim.data.usage(sunday))
    first = client.get(USAGE, params={"date": DAY.isoformat(), "limit": 5}, headers=KEY).json()
    again = client.get(USAGE, params={"date": DAY.isoformat(), "limit": 5}, headers=KEY).json()
    assert first == again and isinstance(first["next_cursor"], str)
    resumed = client.get(
        USAGE, params={"date": DAY.isoformat(), "limit": 5, "cursor": first["next_cursor"]}, headers=KEY
    ).json()
    assert resumed["data"] == as_dicts(sim.data.usage(DAY))[5:10]


def test_overrides_replace_a_day_and_can_change(make_sim: Any) -> None:
    rows = [UsageRecord("Z-9", 1, 2), UsageRecord("A-1", 3, 4), UsageRecord("M-5", 0, 9)]
    server, c = make_sim(overrides={DAY: rows, DAY + timedelta(days=1): []})
    assert fetch_all(c, DAY, limit=2) == as_dicts(sorted(rows, key=lambda r: r.company_id))
    assert server.usage(DAY) == sorted(rows, key=lambda r: r.company_id)
    empty = c.get(USAGE, params={"date": (DAY + timedelta(days=1)).isoformat()}, headers=KEY)
    assert empty.status_code == 200
    assert empty.json() == {"date": "2026-03-03", "data": [], "next_cursor": None}
    server.options.overrides[DAY] = [UsageRecord("A-1", 30, 40)]  # a late correction
    assert fetch_all(c, DAY) == [{"company_id": "A-1", "active_users": 30, "events": 40}]


# -- authentication -------------------------------------------------------------------------------------
def test_oauth_client_credentials(sim: SimulatorServer, client: httpx.Client) -> None:
    issued = sim.stats.tokens_issued
    response = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["access_token"]
    assert sim.stats.tokens_issued == issued + 1
    ok = client.get(USAGE, params={"date": DAY.isoformat(), "limit": 3}, headers=bearer(body["access_token"]))
    assert ok.status_code == 200 and len(ok.json()["data"]) == 3
    # HTTP Basic client authentication works too
    basic = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("demo-client", "demo-secret")
    )
    assert basic.status_code == 200


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "nope"}, 401),
        ({"grant_type": "client_credentials", "client_id": "someone", "client_secret": "demo-secret"}, 401),
        ({"grant_type": "client_credentials"}, 400),
    ],
)
def test_wrong_client_credentials(client: httpx.Client, form: dict[str, str], status: int) -> None:
    response = client.post("/oauth/token", data=form)
    assert response.status_code == status
    assert response.json() == {"error": "invalid_client"}


def test_bad_tokens_and_keys(client: httpx.Client) -> None:
    params = {"date": DAY.isoformat()}
    for headers in ({}, bearer("made-up"), {"Authorization": "Bearer"}, {"Authorization": "Basic eDp5"}):
        response = client.get(USAGE, params=params, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "invalid_token"}
    wrong_key = client.get(USAGE, params=params, headers={"X-API-Key": "wrong"})
    assert wrong_key.status_code == 401 and wrong_key.json()["error"] == "invalid_api_key"


def test_api_key_only_mode(make_sim: Any) -> None:
    _, c = make_sim(client_id=None, client_secret=None)
    assert c.get(USAGE, params={"date": DAY.isoformat()}, headers=KEY).status_code == 200
    token = c.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"},
    )
    assert token.status_code == 400 and token.json() == {"error": "invalid_client"}
    assert c.get(USAGE, params={"date": DAY.isoformat()}).json() == {"error": "invalid_api_key"}


def test_oauth_only_mode(make_sim: Any) -> None:
    _, c = make_sim(api_key=None)
    refused = c.get(USAGE, params={"date": DAY.isoformat()}, headers=KEY)
    assert refused.status_code == 401 and refused.json() == {"error": "invalid_token"}
    ok = c.get(USAGE, params={"date": DAY.isoformat()}, headers=bearer(get_token(c)))
    assert ok.status_code == 200


def test_no_authentication_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="authentication"):
        SimulatorServer(SimulatorOptions(client_id=None, api_key=None))


def test_token_expiry_and_revocation(make_sim: Any) -> None:
    server, c = make_sim(token_ttl=0.3)
    response = c.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"},
    )
    token = response.json()["access_token"]
    assert response.json()["expires_in"] == 1  # whole seconds, rounded up: the server expires it sooner
    params = {"date": DAY.isoformat(), "limit": 1}
    assert c.get(USAGE, params=params, headers=bearer(token)).status_code == 200
    time.sleep(0.4)
    expired = c.get(USAGE, params=params, headers=bearer(token))
    assert expired.status_code == 401 and expired.json() == {"error": "invalid_token"}

    server.options.token_ttl = 3600
    token = get_token(c)
    assert c.get(USAGE, params=params, headers=bearer(token)).status_code == 200
    server.revoke_all_tokens()
    assert c.get(USAGE, params=params, headers=bearer(token)).json() == {"error": "invalid_token"}
    assert c.get(USAGE, params=params, headers=bearer(get_token(c))).status_code == 200


def test_revoke_rate_revokes_tokens(make_sim: Any) -> None:
    _, c = make_sim(revoke_rate=0.3)
    params = {"date": DAY.isoformat(), "limit": 1}
    token, revoked = get_token(c), 0
    for _ in range(100):
        response = c.get(USAGE, params=params, headers=bearer(token))
        if response.status_code == 401:
            assert response.json() == {"error": "invalid_token"}
            # revoked for good, not just this once
            assert c.get(USAGE, params=params, headers=bearer(token)).status_code == 401
            revoked += 1
            token = get_token(c)
        else:
            assert response.status_code == 200
    assert 15 <= revoked <= 45


# -- dates and parameters -------------------------------------------------------------------------------
def test_retention_and_final_days(make_sim: Any) -> None:
    pending = TODAY - timedelta(days=3)
    server, c = make_sim(not_final_days=frozenset({pending}))

    def status(day: date) -> tuple[int, Any]:
        response = c.get(USAGE, params={"date": day.isoformat(), "limit": 1}, headers=KEY)
        return response.status_code, response.json().get("error")

    assert status(TODAY - timedelta(days=31)) == (404, "date_not_available")
    assert status(date(2020, 1, 1)) == (404, "date_not_available")
    assert status(TODAY - timedelta(days=30))[0] == 200
    assert status(TODAY - timedelta(days=1))[0] == 200
    assert status(TODAY) == (409, "date_not_final")
    assert status(TODAY + timedelta(days=5)) == (409, "date_not_final")
    assert status(pending) == (409, "date_not_final")
    server.set_today(TODAY + timedelta(days=1))
    assert status(TODAY)[0] == 200
    assert status(TODAY - timedelta(days=30)) == (404, "date_not_available")


def test_the_utc_clock_is_today_by_default(make_sim: Any) -> None:
    server, c = make_sim(today=None)
    clock = datetime.now(UTC).date()
    assert server.today() == clock
    assert c.get(USAGE, params={"date": clock.isoformat()}, headers=KEY).status_code == 409
    yesterday = c.get(USAGE, params={"date": (clock - timedelta(days=1)).isoformat()}, headers=KEY)
    assert yesterday.status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"date": ""},
        {"date": "20260302"},
        {"date": "2026-02-30"},
        {"date": "yesterday"},
        {"date": "2026-03-02", "limit": "0"},
        {"date": "2026-03-02", "limit": "1001"},
        {"date": "2026-03-02", "limit": "-5"},
        {"date": "2026-03-02", "limit": "abc"},
        {"date": "2026-03-02", "limit": ""},
        {"date": "2026-03-02", "cursor": "!!not-base64!!"},
        {"date": "2026-03-02", "cursor": "bm9wZQ"},
        {"date": "2026-03-02", "cursor": cursor_for(date(2026, 3, 3), 10)},
    ],
)
def test_bad_parameters_are_400(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get(USAGE, params=params, headers=KEY)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request"}


def test_unknown_path_and_method(client: httpx.Client) -> None:
    missing = client.get("/v2/usage", headers=KEY)
    assert missing.status_code == 404 and missing.json() == {"error": "not_found"}
    assert client.post(USAGE, headers=KEY).status_code == 405
    assert client.get("/oauth/token").status_code == 405


def test_http_1_1_keep_alive_and_content_length(sim: SimulatorServer, client: httpx.Client) -> None:
    for _ in range(3):
        response = client.get(USAGE, params={"date": DAY.isoformat(), "limit": 2}, headers=KEY)
        assert response.http_version == "HTTP/1.1"
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["content-length"]) == len(response.content)
        assert response.headers.get("connection", "").lower() != "close"


# -- faults ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["seconds", "http-date", "zero"])
def test_rate_limit_answers_429_with_retry_after(make_sim: Any, style: str) -> None:
    _, c = make_sim(rate_limit=3.0, retry_after=style)
    params = {"date": DAY.isoformat(), "limit": 1}
    responses = [c.get(USAGE, params=params, headers=KEY) for _ in range(10)]
    statuses = [r.status_code for r in responses]
    assert statuses[:3] == [200, 200, 200] and statuses.count(429) >= 5
    for r in responses:
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert int(r.headers["X-RateLimit-Remaining"]) >= 0 and int(r.headers["X-RateLimit-Reset"]) >= 0
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.json() == {"error": "rate_limited"}
    retry_after = limited.headers["Retry-After"]
    if style == "seconds":
        assert retry_after == "1"
    elif style == "zero":
        assert retry_after == "0"
    else:
        when = parsedate_to_datetime(retry_after)
        assert when.tzinfo is not None
        assert datetime.now(UTC) - timedelta(seconds=1) <= when <= datetime.now(UTC) + timedelta(seconds=3)
    time.sleep(0.4)  # a token refills
    assert c.get(USAGE, params=params, headers=KEY).status_code == 200


def test_rate_limit_is_per_client_across_tokens(make_sim: Any) -> None:
    _, c = make_sim(rate_limit=2.0)
    params = {"date": DAY.isoformat(), "limit": 1}
    statuses = [c.get(USAGE, params=params, headers=bearer(get_token(c))).status_code for _ in range(6)]
    assert statuses.count(429) >= 3


def test_spurious_429s(make_sim: Any) -> None:
    server, c = make_sim(rate_limited_rate=0.25, retry_after_seconds=2.5)
    params = {"date": DAY.isoformat(), "limit": 1}
    statuses = [c.get(USAGE, params=params, headers=KEY) for _ in range(200)]
    limited = [r for r in statuses if r.status_code == 429]
    assert 30 <= len(limited) <= 70
    assert {r.headers["Retry-After"] for r in limited} == {"3"}
    assert "X-RateLimit-Limit" not in limited[0].headers
    assert server.stats.count(status=429, path=USAGE) == len(limited)


def test_server_errors_at_the_configured_rate(make_sim: Any) -> None:
    server, c = make_sim(error_rate=0.3)
    params = {"date": DAY.isoformat(), "limit": 1}
    statuses = Counter(c.get(USAGE, params=params, headers=KEY).status_code for _ in range(300))
    errors = {s: n for s, n in statuses.items() if s != 200}
    assert set(errors) <= {500, 502, 503, 504} and len(errors) >= 3
    assert 60 <= sum(errors.values()) <= 120
    assert server.stats.by_status == dict(statuses)
    assert server.stats.count(path=USAGE) == 300


def test_faults_are_deterministic_under_the_seed(make_sim: Any) -> None:
    params = {"date": DAY.isoformat(), "limit": 1}
    runs = []
    for _ in range(2):
        _, c = make_sim(error_rate=0.3, rate_limited_rate=0.1, seed=11)
        runs.append([c.get(USAGE, params=params, headers=KEY).status_code for _ in range(60)])
    assert runs[0] == runs[1]


def test_token_endpoint_fails_transiently_too(make_sim: Any) -> None:
    _, c = make_sim(error_rate=1.0)
    response = c.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"},
    )
    assert response.status_code in (500, 502, 503, 504)


def test_truncated_bodies(make_sim: Any) -> None:
    server, c = make_sim(truncate_rate=0.3)
    params = {"date": DAY.isoformat(), "limit": 50}
    broken = 0
    for _ in range(200):
        response = c.get(USAGE, params=params, headers=KEY)
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            broken += 1
        else:
            assert len(body["data"]) == 50
    assert 40 <= broken <= 80
    assert server.stats.truncated == broken


def test_connection_resets(make_sim: Any) -> None:
    server, c = make_sim(reset_rate=0.3)
    params = {"date": DAY.isoformat(), "limit": 1}
    resets = 0
    for _ in range(200):
        try:
            response = c.get(USAGE, params=params, headers=KEY)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
            resets += 1
        else:
            assert response.status_code == 200
    assert 40 <= resets <= 80
    # the server thread records a response just after sending it: let the last one land
    deadline = time.monotonic() + 2
    while server.stats.count(status=200) < 200 - resets and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stats.resets == resets
    assert server.stats.count(status=200) == 200 - resets


def test_latency(make_sim: Any) -> None:
    _, c = make_sim(latency=0.15)
    started = time.perf_counter()
    assert c.get(USAGE, params={"date": DAY.isoformat(), "limit": 1}, headers=KEY).status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_drift_fields(make_sim: Any) -> None:
    server, c = make_sim(drift_fields=True)
    records = fetch_all(c, DAY, limit=100)
    assert all({"plan", "region"} <= set(r) for r in records)
    assert {r["plan"] for r in records} <= {"free", "starter", "pro", "enterprise"}
    core = [{k: r[k] for k in ("company_id", "active_users", "events")} for r in records]
    assert core == as_dicts(server.data.usage(DAY))


def test_duplicates_are_identical_and_straddle_pages(make_sim: Any) -> None:
    server, c = make_sim(duplicate_rate=0.2)
    expected = as_dicts(server.data.usage(DAY))
    for limit in (1, 7, 1000):
        pages = fetch_pages(c, DAY, limit=limit)
        records = [r for page in pages for r in page]
        deduplicated = [r for k, r in enumerate(records) if k == 0 or r != records[k - 1]]
        assert deduplicated == expected
        repeats = len(records) - len(expected)
        assert 0.1 * len(expected) <= repeats <= 0.3 * len(expected)
        if limit == 7:
            assert any(pages[k][-1] == pages[k + 1][0] for k in range(len(pages) - 1))


def test_conflicting_records(make_sim: Any) -> None:
    server, c = make_sim(conflict_days=frozenset({DAY}))
    for limit in (1, 1000):
        records = fetch_all(c, DAY, limit=limit)
        by_company = Counter(r["company_id"] for r in records)
        twice = [cid for cid, n in by_company.items() if n > 1]
        assert len(twice) == 1 and len(records) == len(server.data.usage(DAY)) + 1
        pair = [r for r in records if r["company_id"] == twice[0]]
        assert pair[0] != pair[1]
    assert fetch_all(c, DAY - timedelta(days=1)) == as_dicts(server.data.usage(DAY - timedelta(days=1)))


def test_bad_records(make_sim: Any) -> None:
    days = frozenset(DAY - timedelta(days=k) for k in range(6))
    server, c = make_sim(bad_record_days=days)
    kinds = set()
    for day in days:
        records = fetch_all(c, day, limit=1000)
        assert len(records) == len(server.data.usage(day))
        bad = [r for r in records if "events" not in r or r["active_users"] < 0 or r["events"] < 0]
        assert len(bad) == 1
        kinds.add("missing" if "events" not in bad[0] else "negative")
    assert kinds == {"missing", "negative"}


# -- lifecycle, stats, CLI ------------------------------------------------------------------------------
def test_stop_closes_kept_alive_connections_and_the_port() -> None:
    server = SimulatorServer(SimulatorOptions(today=TODAY))
    url = server.start()
    with httpx.Client(base_url=url, timeout=2) as c:
        assert c.get(USAGE, params={"date": DAY.isoformat(), "limit": 1}, headers=KEY).status_code == 200
        server.stop()
        server.stop()  # twice is harmless
        with pytest.raises(httpx.TransportError):
            c.get(USAGE, params={"date": DAY.isoformat(), "limit": 1}, headers=KEY)


def test_stats_count_by_status_and_path(make_sim: Any) -> None:
    server, c = make_sim()
    token = get_token(c)
    c.get(USAGE, params={"date": DAY.isoformat()}, headers=bearer(token))
    c.get(USAGE, params={"date": TODAY.isoformat()}, headers=bearer(token))
    c.get(USAGE, params={"date": DAY.isoformat()}, headers=bearer("nope"))
    assert server.stats.by_status == {200: 2, 409: 1, 401: 1}
    assert server.stats.by_path == {"/oauth/token": 1, USAGE: 3}
    assert server.stats.count(status=200, path=USAGE) == 1
    assert server.stats.tokens_issued == 1 and server.stats.requests == 4
    server.stats.reset()
    assert server.stats.requests == 0


def test_serve_blocks_until_stopped() -> None:
    ready: list[SimulatorServer] = []
    started = threading.Event()

    def on_ready(server: SimulatorServer) -> None:
        ready.append(server)
        started.set()

    thread = threading.Thread(
        target=serve,
        args=(SimulatorOptions(today=TODAY),),
        kwargs={"port": 0, "ready": on_ready},
        daemon=True,
    )
    thread.start()
    assert started.wait(5)
    response = httpx.get(ready[0].url + USAGE, params={"date": DAY.isoformat(), "limit": 1}, headers=KEY)
    assert response.status_code == 200
    ready[0].stop()
    thread.join(5)
    assert not thread.is_alive()


def test_cli_help_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    help_text = runner.invoke(simulate_api, ["--help"]).output
    assert "company-activity simulate-api --port 8080 --companies 500 --error-rate 0.05" in help_text
    assert simulate_api.name == "simulate-api"

    seen: list[SimulatorOptions] = []

    def fake_serve(options: SimulatorOptions, *, host: str, port: int, ready: Any) -> None:
        seen.append(options)
        server = SimulatorServer(options, host=host, port=0)
        server.start()
        try:
            ready(server)
        finally:
            server.stop()

    monkeypatch.setattr(simulator_cli, "serve", fake_serve)
    result = runner.invoke(
        simulate_api,
        [
            "--port", "0", "--seed", "3", "--companies", "500", "--today", "2026-03-10",
            "--error-rate", "0.05", "--retry-after", "http-date", "--drift-fields", "--api-key", "",
            "--rate-limit", "10", "--not-final", "2026-03-08",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    options = seen[0]
    assert (options.seed, options.companies, options.today) == (3, 500, date(2026, 3, 10))
    assert options.error_rate == 0.05 and options.retry_after == "http-date" and options.drift_fields
    assert options.api_key is None and options.rate_limit == 10.0
    assert options.not_final_days == frozenset({date(2026, 3, 8)})
    assert "listening on http://127.0.0.1:" in result.output
    assert "COMPANY_ACTIVITY_API_CLIENT_SECRET=demo-secret" in result.output

    bad = runner.invoke(simulate_api, ["--error-rate", "2"])
    assert bad.exit_code == 2
    no_auth = runner.invoke(simulate_api, ["--api-key", "", "--client-id", ""])
    assert no_auth.exit_code == 2 and "authentication" in no_auth.output


# -- deep pages of a large simulator (their speed: benchmarks/bench_simulator.py) ------------------------
def test_pages_deep_into_a_million_companies_are_the_data() -> None:
    options = SimulatorOptions(companies=1_000_000, today=TODAY)
    starts = [500_000 + 29_000 * k for k in range(15)]
    with SimulatorServer(options) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        for start in starts:
            params: dict[str, str | int] = {"date": DAY.isoformat(), "limit": 1000}
            params["cursor"] = cursor_for(DAY, start)
            body = c.get(USAGE, params=params, headers=KEY).json()
            assert len(body["data"]) == 1000 and body["next_cursor"]
            assert body["data"][0]["company_id"] >= f"C{start:07d}"
            page, _ = server._page(DAY, start, 0, 1000)
            assert body["data"] == page
        it = server.data.iter_usage_from(DAY, starts[-1])
        assert page == as_dicts([next(it)[1] for _ in range(1000)])


# -- issue 9: strict limits, dripped bodies, endless cursors -----------------------------------------------
def test_strict_rate_limit_refuses_any_burst(make_sim: Any) -> None:
    server, c = make_sim(rate_limit=4.0, rate_limit_strict=True)
    params = {"date": DAY.isoformat(), "limit": 1}
    first = c.get(USAGE, params=params, headers=KEY)
    second = c.get(USAGE, params=params, headers=KEY)  # at once: a bucket of 4/s would allow it
    assert first.status_code == 200
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert second.json() == {"error": "rate_limited"}
    time.sleep(0.3)  # more than 1/R after the last accepted one
    assert c.get(USAGE, params=params, headers=KEY).status_code == 200
    assert server.stats.count(status=429) == 1


def test_a_bucket_rate_limit_still_allows_a_burst(make_sim: Any) -> None:
    _, c = make_sim(rate_limit=4.0)
    params = {"date": DAY.isoformat(), "limit": 1}
    assert [c.get(USAGE, params=params, headers=KEY).status_code for _ in range(4)] == [200] * 4


def test_a_dripped_body_arrives_byte_by_byte_and_a_client_that_leaves_is_counted(make_sim: Any) -> None:
    server, _ = make_sim(companies=3, drip_interval=0.01)
    url = f"{server.url}{USAGE}?date={DAY.isoformat()}&limit=1"
    with httpx.Client(timeout=10) as c, c.stream("GET", url, headers=KEY) as stream:
        chunks = list(stream.iter_raw())
    assert stream.status_code == 200 and orjson.loads(b"".join(chunks))["date"] == DAY.isoformat()
    assert len(chunks) > 10 and max(map(len, chunks)) <= 2  # the body came a byte (or two) at a time
    with httpx.Client(timeout=10) as c, c.stream("GET", url, headers=KEY) as stream:
        assert stream.status_code == 200
        next(stream.iter_raw(1))  # a byte, then leave
    deadline = time.monotonic() + 10
    while server.stats.aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats.aborted == 1
    assert server.stats.count(status=200) == 1  # the abandoned answer is not counted as served


def test_an_endless_cursor_never_ends_and_never_repeats(make_sim: Any) -> None:
    server, c = make_sim(companies=20, endless_cursor=True)
    cursor: str | None = None
    seen: set[str] = set()
    records = 0
    for _ in range(30):
        params: dict[str, Any] = {"date": DAY.isoformat(), "limit": 10}
        if cursor is not None:
            params["cursor"] = cursor
        body = c.get(USAGE, params=params, headers=KEY).json()
        records += len(body["data"])
        cursor = body["next_cursor"]
        assert cursor is not None and cursor not in seen
        seen.add(cursor)
    assert records == len(server.usage(DAY))  # every record once, then empty pages forever
