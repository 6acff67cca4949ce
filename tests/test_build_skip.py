"""``build`` skips the days whose inputs did not change since their build; ``build --full`` rebuilds all
(issue 13). Real parts: DuckDB and PostgreSQL, the pipeline, the CLI (``--dry-run``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from click.testing import CliRunner

from company_activity.cli import main
from company_activity.clock import utcnow
from company_activity.config import load_settings
from company_activity.pipeline import Pipeline
from company_activity.run.context import RunReport
from company_activity.state import RunStateStore
from company_activity.warehouse import connect

from . import pg
from .helpers import Attrs, Model, days, loaded_at, seed_crm, seed_usage, table

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url

TODAY = date(2026, 11, 12)
TEN = days(date(2026, 11, 1), date(2026, 11, 10))
D1, D5, D8, D10 = TEN[0], TEN[4], TEN[7], TEN[9]


def usage_of(day: date, bump: int = 0) -> dict[str, tuple[int, int]]:
    k = day.day
    return {"A": (k % 3 + bump, 10 * k), "B": (0, 0), "D": (1, k + bump)} if k % 4 else {"A": (2, 5)}


CRM: dict[date, dict[str, Attrs]] = {
    D1: {"A": ("Acme", "DE", "saas", None), "B": ("Beta", "FR", None, None), "C": ("Cold", "US", None, None)}
}


def seed(url: str) -> dict[date, dict[str, tuple[int, int]]]:
    """The CRM snapshot of D1 (recorded as loaded) and complete usage for every day of TEN."""
    usage = {d: usage_of(d) for d in TEN}
    with connect(url) as wh:
        wh.init_schema()
        for day, companies in CRM.items():
            late_crm(wh_url=url, day=day, companies=companies)
        for day in TEN:
            seed_usage(wh, day, usage[day])
    return usage


def late_crm(*, wh_url: str, day: date, companies: dict[str, Attrs]) -> None:
    with connect(wh_url) as wh:
        seed_crm(wh, day, companies)
        RunStateStore(wh).crm_snapshot(day, "loaded", row_count=len(companies), loaded_at=utcnow())


def build(url: str, tmp_path: Path, *, full: bool = False) -> RunReport:
    settings = load_settings(warehouse=url, lake=str(tmp_path / "lake"), start_date=D1, today=TODAY)
    with Pipeline(settings, sinks=[]) as pipeline:
        return pipeline.build(D1, D10, full=full)


def outcome(report: RunReport) -> tuple[list[date], list[date]]:
    """(days built, days skipped) by a run."""
    built = sorted(b.day for b in report.built)
    skipped = sorted(s.day for s in report.steps if s.step == "build" and s.status == "skipped")
    return built, skipped


def test_a_second_build_skips_every_day_and_changes_no_row(wh_url: str, tmp_path: Path) -> None:
    usage = seed(wh_url)
    first = build(wh_url, tmp_path)
    assert outcome(first) == (TEN, [])
    with connect(wh_url) as wh:
        rows, stamps = table(wh), loaded_at(wh)
    assert rows == Model(CRM, usage, TEN).rows()

    again = build(wh_url, tmp_path)
    assert again.exit_code == 0 and outcome(again) == ([], TEN)
    skipped = [s for s in again.steps if s.status == "skipped"]
    assert all(
        s.message is not None
        and s.message.startswith("inputs unchanged since the build of 2")
        and s.message.endswith("; --full rebuilds it")
        for s in skipped
    )
    with connect(wh_url) as wh:
        assert table(wh) == rows and loaded_at(wh) == stamps  # no row rewritten
        recorded = wh.execute(
            "select step_day, status from ops.run_steps where run_id = :r order by 1", {"r": again.run_id}
        )
        assert recorded == [(d, "skipped") for d in TEN]
        assert wh.execute(
            "select count(*) from ops.build_changes where run_id = :r", {"r": again.run_id}
        ) == [(0,)]

    full = build(wh_url, tmp_path, full=True)
    assert outcome(full) == (TEN, [])
    assert full.command.endswith("--full")
    with connect(wh_url) as wh:
        assert table(wh) == rows and loaded_at(wh) == stamps  # rebuilt, same values: record_loaded_at kept
        changes = wh.execute(
            "select sum(rows_unchanged), sum(rows_inserted + rows_updated + rows_deleted) "
            "from ops.build_changes where run_id = :r",
            {"r": full.run_id},
        )
    assert changes == [(len(rows), 0)]


def test_only_the_days_a_late_input_changed_are_rebuilt(wh_url: str, tmp_path: Path) -> None:
    usage = seed(wh_url)
    assert outcome(build(wh_url, tmp_path)) == (TEN, [])

    # a usage correction of D5: its 7-day window reaches D5 ... D10 (D11 is not in the range)
    usage[D5] = usage_of(D5, bump=4)
    with connect(wh_url) as wh:
        seed_usage(wh, D5, usage[D5])
    report = build(wh_url, tmp_path)
    assert outcome(report) == (TEN[4:], TEN[:4])

    # a late CRM snapshot of D8: the days it is in effect on are D8 ... D10
    crm = {**CRM, D8: {"A": ("Acme GmbH", "DE", "saas", None), "E": ("Echo", "IT", None, None)}}
    late_crm(wh_url=wh_url, day=D8, companies=crm[D8])
    report = build(wh_url, tmp_path)
    assert outcome(report) == (TEN[7:], TEN[:7])
    with connect(wh_url) as wh:
        assert table(wh) == Model(crm, usage, TEN).rows()

    assert outcome(build(wh_url, tmp_path)) == ([], TEN)


def test_a_failed_day_is_built_again_and_dry_run_lists_the_skips(tmp_path: Path) -> None:
    url = str(tmp_path / "warehouse.duckdb")
    seed(url)
    assert outcome(build(url, tmp_path)) == (TEN, [])
    with connect(url) as wh:
        RunStateStore(wh).build_failed(D8, "an earlier failure")
    env = {
        "COMPANY_ACTIVITY_WAREHOUSE": url,
        "COMPANY_ACTIVITY_LAKE": str(tmp_path / "lake"),
        "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
        "COMPANY_ACTIVITY_LOG_LEVEL": "WARNING",
    }
    args = ["build", "--start", D1.isoformat(), "--end", D10.isoformat()]
    dry = CliRunner().invoke(main, [*args, "--dry-run"], env=env, catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert (
        "skipped, inputs unchanged since their build (--full rebuilds them): "
        "2026-11-01..2026-11-07, 2026-11-09..2026-11-10"
    ) in dry.output.splitlines()
    dry_full = CliRunner().invoke(main, [*args, "--full", "--dry-run"], env=env, catch_exceptions=False)
    assert "command: company-activity build --start 2026-11-01 --end 2026-11-10 --full" in dry_full.output
    assert "skipped" not in dry_full.output

    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines() if line.startswith("  2026")]
    shown = {line[0]: line[2] for line in lines}
    assert shown == {
        d.isoformat(): "warning" if d == D8 else "skipped" for d in TEN
    }  # D's CRM row is missing
    assert "OK: 1 day(s) built" in result.output
