"""Test helpers: seed staging directly and a plain-Python model of the analytics spec."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from company_activity.clock import utcnow
from company_activity.run import plan
from company_activity.simulator import SimulatorServer
from company_activity.state import RunStateStore
from company_activity.warehouse import Warehouse
from company_activity.warehouse.build import build_segment

Attrs = tuple[str | None, str | None, str | None, datetime | None]  # name, country, industry, contact


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


def seed_usage(wh: Warehouse, day: date, records: Mapping[str, tuple[int, int]]) -> None:
    """Put a complete usage day straight into staging (as a finished API ingestion would)."""
    now = utcnow()
    with wh.transaction():
        wh.execute("delete from stg.product_usage_daily where activity_date = :d", {"d": day})
        for cid, (users, events) in records.items():
            wh.execute(
                "insert into stg.product_usage_daily values (:d, :c, :u, :e, 'test', :now)",
                {"d": day, "c": cid, "u": users, "e": events, "now": now},
            )
        wh.run(
            "ops.sql",
            "usage_day_upsert",
            {
                "day": day,
                "status": "complete",
                "raw_run_id": "test",
                "record_count": len(records),
                "page_count": 1,
                "schema_drift": None,
                "completed_at": now,
                "updated_at": now,
                "last_error": None,
            },
        )


def seed_crm(wh: Warehouse, day: date, companies: Mapping[str, Attrs]) -> None:
    now = utcnow()
    with wh.transaction():
        wh.execute("delete from stg.crm_daily where snapshot_date = :d", {"d": day})
        for line, (cid, (name, country, industry, contact)) in enumerate(companies.items(), start=2):
            wh.execute(
                "insert into stg.crm_daily values (:d, :c, :n, :co, :i, :t, 'test.csv', :line, :now, 'test')",
                {
                    "d": day,
                    "c": cid,
                    "n": name,
                    "co": country,
                    "i": industry,
                    "t": contact,
                    "line": line,
                    "now": now,
                },
            )


def table(wh: Warehouse) -> dict[tuple[date, str], tuple[object, ...]]:
    """The analytics table: {(day, company): (name, country, industry, contact, users, events, 7d, churn)}."""
    rows = wh.execute(
        "select activity_date, company_id, company_name, country, industry_tag, last_contact_at, "
        'active_users, events, "7d_active_users", is_churn_risk from analytics.company_daily_activity'
    )
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def loaded_at(wh: Warehouse) -> dict[tuple[date, str], datetime]:
    rows = wh.execute(
        "select activity_date, company_id, record_loaded_at from analytics.company_daily_activity"
    )
    return {(r[0], r[1]): r[2] for r in rows}


@dataclass
class Model:
    """The spec (company-daily-activity.md) in plain Python."""

    crm: Mapping[date, Mapping[str, Attrs]]
    usage: Mapping[date, Mapping[str, tuple[int, int]]]
    complete: Iterable[date]

    def rows(self) -> dict[tuple[date, str], tuple[object, ...]]:
        complete = sorted(set(self.complete))
        if not complete:
            return {}
        first = complete[0]
        done = set(complete)

        def buildable(d: date) -> bool:
            return all(x in done for x in days(d - timedelta(days=6), d) if x >= first or x == d)

        def universe(d: date) -> dict[str, Attrs | None]:
            snaps = [s for s in self.crm if s <= d]
            snap = self.crm[max(snaps)] if snaps else {}
            out: dict[str, Attrs | None] = dict(snap)
            for cid in self.usage.get(d, {}):
                out.setdefault(cid, None)
            return out

        result: dict[tuple[date, str], tuple[object, ...]] = {}
        for d in complete:
            if not buildable(d):
                continue
            for cid, attrs in universe(d).items():
                users, events = self.usage.get(d, {}).get(cid, (0, 0))
                window = days(d - timedelta(days=6), d)
                s7 = sum(self.usage.get(x, {}).get(cid, (0, 0))[0] for x in window if x in done)
                e7 = sum(self.usage.get(x, {}).get(cid, (0, 0))[1] for x in window if x in done)
                d6 = d - timedelta(days=6)
                had_row = d6 >= first and d6 in done and cid in universe(d6)
                churn = s7 == 0 and e7 == 0 and had_row
                name, country, industry, contact = attrs if attrs else (None, None, None, None)
                result[(d, cid)] = (name, country, industry, contact, users, events, s7, churn)
        return result


def clean(value: str | None) -> str | None:
    """A CRM value as the CSV rules load it: trimmed, empty -> None."""
    return None if value is None else (value.strip() or None)


def ground_truth(
    sim: SimulatorServer, crm_days: Iterable[date], usage_days: list[date]
) -> dict[tuple[date, str], tuple[object, ...]]:
    """The analytics table the spec's model gives for the simulator's CRM snapshots and usage days."""
    crm: dict[date, dict[str, Attrs]] = {}
    for day in crm_days:
        crm[day] = {
            r.company_id: (
                clean(r.name),
                clean(r.country),
                clean(r.industry_tag),
                r.last_contact_at.replace(tzinfo=None) if r.last_contact_at else None,
            )
            for r in sim.data.crm_snapshot(day)
        }
    usage = {day: {r.company_id: (r.active_users, r.events) for r in sim.usage(day)} for day in usage_days}
    return Model(crm, usage, usage_days).rows()


def build_from_state(wh: Warehouse, start: date, end: date, **options: Any) -> Any:
    """:func:`build_segment` of ``start … end`` with the complete days read from the run-state store."""
    complete = RunStateStore(wh).complete_days(start - timedelta(days=6), end)
    return build_segment(wh, start, end, complete_days=complete, **options)


def seed_and_build(
    wh: Warehouse,
    crm: Mapping[date, Mapping[str, Attrs]],
    usage: Mapping[date, Mapping[str, tuple[int, int]]],
    all_days: list[date],
    complete: list[date],
    **build_options: int,
) -> None:
    """Empty staging and the table, load a CRM history and the complete usage days, build what the gate lets.

    ``build_options`` go to :func:`build_segment` (``short_range_days``, ``chunk_days``).
    """
    with wh.transaction():
        for t in (
            "stg.crm_daily",
            "stg.product_usage_daily",
            "ops.usage_days",
            "analytics.company_daily_activity",
        ):
            wh.execute(f"delete from {t}")  # noqa: S608 - fixed table names
    for day, companies in crm.items():
        seed_crm(wh, day, companies)
    for day in complete:
        seed_usage(wh, day, usage[day])
    first = RunStateStore(wh).first_usage_day()
    if first is None:  # no complete day: nothing can be built
        return
    ok, _ = RunStateStore(wh).check_gate(all_days)
    for s, e in plan.segments(ok):
        build_from_state(wh, s, e, first_usage_day=first, loaded_at=datetime(2026, 12, 1), **build_options)


def exception_texts(exc: BaseException) -> list[str]:
    """str() and repr() of an exception and of every exception it was raised from."""
    out: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        out += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return out
