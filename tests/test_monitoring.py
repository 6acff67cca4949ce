"""Volume anomalies on real warehouses (DuckDB; PostgreSQL too where marked) fed with the simulator's
weekday seasonality; recovery notices."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from company_activity.clock import utcnow
from company_activity.config import Settings, load_settings
from company_activity.errors import ConfigError
from company_activity.simulator import SyntheticData
from company_activity.state import Ledger, RunStateStore, StepOutcome
from company_activity.steps.checks import (
    VolumeRule,
    detect_volume_anomalies,
    evaluate_volume,
    previous_failure,
    record_volume_checks,
    recovery_alert,
    volume_checks,
)
from company_activity.warehouse import Warehouse

from . import pg

# `any_wh`: the test runs on DuckDB and on PostgreSQL (skipped when no server, see tests/pg.py)
pg_server = pg.pg_server
pg_databases = pg.pg_databases
engine = pg.engine
new_warehouse_url = pg.new_warehouse_url
wh_url = pg.wh_url
any_wh = pg.any_wh

START = date(2026, 9, 28)  # a Monday
WEEKS = 6
DAYS = [START + timedelta(days=k) for k in range(WEEKS * 7)]
DEFAULT = Settings()


@pytest.fixture(scope="module")
def world() -> dict[date, tuple[int, int]]:
    """{day: (usage records, CRM rows)} of six weeks of the simulator (weekdays busy, weekends quiet)."""
    data = SyntheticData(seed=11, companies=1500)
    return {d: (len(data.usage(d)), len(data.crm_snapshot(d))) for d in DAYS}


def put_usage(wh: Warehouse, day: date, count: int, status: str = "complete") -> None:
    now = utcnow()
    with wh.transaction():
        wh.run(
            "ops.sql",
            "usage_day_upsert",
            {
                "day": day,
                "status": status,
                "raw_run_id": "r",
                "record_count": count,
                "page_count": 1,
                "schema_drift": None,
                "completed_at": now,
                "updated_at": now,
                "last_error": None,
            },
        )


def put_crm(wh: Warehouse, day: date, count: int, status: str = "loaded") -> None:
    now = utcnow()
    with wh.transaction():
        wh.run(
            "ops.sql",
            "crm_snapshot_upsert",
            {
                "day": day,
                "status": status,
                "row_count": count,
                "rejected_count": 0,
                "duplicate_count": 0,
                "extra_columns": None,
                "source_file": f"crm_daily_{day}.csv",
                "loaded_at": now,
                "updated_at": now,
                "last_error": None,
            },
        )


def feed(wh: Warehouse, world: dict[date, tuple[int, int]], **override: tuple[int, int]) -> None:
    with wh.transaction():  # the puts join this one transaction
        for d, (usage, crm) in world.items():
            usage, crm = override.get(d.isoformat(), (usage, crm))
            put_usage(wh, d, usage)
            put_crm(wh, d, crm)


# == the simulator's seasonality ===========================================================================
def test_the_simulated_weekend_dip_is_real(world: dict[date, tuple[int, int]]) -> None:
    fri, sat = date(2026, 10, 9), date(2026, 10, 10)
    assert world[sat][0] < 0.8 * world[fri][0]  # a drop of 20 %+ against the previous day


def test_a_month_of_normal_data_raises_no_anomaly(
    any_wh: Warehouse, world: dict[date, tuple[int, int]]
) -> None:
    feed(any_wh, world)
    checked = DAYS[7:]  # five weeks, every day with a figure a week earlier
    for day in checked:
        checks = volume_checks(RunStateStore(any_wh), day, DEFAULT)
        assert [c.source for c in checks] == ["crm", "usage"]
        assert all(c.week_ago_count is not None for c in checks)
        assert detect_volume_anomalies(RunStateStore(any_wh), day, DEFAULT) == [], day
    saturdays = [d for d in checked if d.weekday() == 5]
    for sat in saturdays:  # the weekend dip is there, and is not an anomaly
        (usage,) = volume_checks(RunStateStore(any_wh), sat, DEFAULT, sources=["usage"])
        assert usage.previous_day_drop is not None and usage.previous_day_drop > 0.2
        assert usage.week_ago_drop is not None and abs(usage.week_ago_drop) < 0.1
        assert usage.status == "pass"
        assert "within 10%" in usage.message


def test_a_real_drop_on_a_weekday_is_an_anomaly(
    any_wh: Warehouse, world: dict[date, tuple[int, int]]
) -> None:
    wed = date(2026, 10, 21)
    normal = world[wed][0]
    dropped = normal - int(normal * 0.4)  # 40 % of the records went missing
    feed(any_wh, world, **{wed.isoformat(): (dropped, world[wed][1])})

    (anomaly,) = detect_volume_anomalies(RunStateStore(any_wh), wed, DEFAULT)
    assert anomaly.source == "usage" and anomaly.day == wed and anomaly.count == dropped
    assert anomaly.previous_day_count == world[wed - timedelta(days=1)][0]
    assert anomaly.week_ago_count == world[wed - timedelta(days=7)][0]
    assert anomaly.previous_day_drop == pytest.approx(1 - dropped / anomaly.previous_day_count)
    assert anomaly.week_ago_drop is not None and anomaly.week_ago_drop > 0.35
    assert anomaly.anomalous and not anomaly.blocking and anomaly.status == "warn"
    assert anomaly.message.startswith(
        f"API usage records of 2026-10-21 dropped more than 10% against the previous day and the same "
        f"weekday a week earlier: {dropped} vs {anomaly.previous_day_count} the previous day (-"
    )
    assert f"{anomaly.week_ago_count} on Wednesday a week earlier (-" in anomaly.message

    alert = anomaly.alert("run-1")
    assert (alert.severity, alert.title, alert.step, alert.day) == (
        "warning",
        "volume anomaly: usage",
        "ingest_usage",
        wed,
    )
    assert alert.rerun == "company-activity run --date 2026-10-21"
    assert alert.figures["count"] == str(dropped)
    assert alert.figures["previous day"].startswith(f"{anomaly.previous_day_count} (-")
    assert alert.figures["threshold"] == "drop > 10% (both)"

    # the day after, compared with the low day, is a rise: no anomaly; a week later is normal again
    assert detect_volume_anomalies(RunStateStore(any_wh), wed + timedelta(days=1), DEFAULT) == []
    assert detect_volume_anomalies(RunStateStore(any_wh), wed + timedelta(days=7), DEFAULT) == []


def test_a_real_drop_on_a_saturday_is_an_anomaly(wh: Warehouse, world: dict[date, tuple[int, int]]) -> None:
    sat = date(2026, 10, 24)
    feed(wh, world, **{sat.isoformat(): (int(world[sat][0] * 0.6), world[sat][1])})
    assert [a.source for a in detect_volume_anomalies(RunStateStore(wh), sat, DEFAULT)] == ["usage"]


def test_a_crm_snapshot_drop_is_an_anomaly(wh: Warehouse, world: dict[date, tuple[int, int]]) -> None:
    day = date(2026, 10, 28)
    feed(wh, world, **{day.isoformat(): (world[day][0], world[day][1] // 2)})
    (anomaly,) = detect_volume_anomalies(RunStateStore(wh), day, DEFAULT)
    assert anomaly.source == "crm" and anomaly.step == "ingest_crm" and anomaly.check_name == "volume_crm"
    assert anomaly.message.startswith("CRM snapshot rows of 2026-10-28 dropped more than 10%")


# == the rules ==============================================================================================
def test_without_a_week_old_figure_the_previous_day_decides(wh: Warehouse) -> None:
    d = date(2026, 10, 2)
    put_usage(wh, d - timedelta(days=1), 1000)
    put_usage(wh, d, 850)
    (a,) = detect_volume_anomalies(RunStateStore(wh), d, DEFAULT)
    assert a.week_ago_count is None and a.week_ago_drop is None
    assert a.previous_day_drop == pytest.approx(0.15)
    assert a.observed == pytest.approx(0.15)
    assert "against the previous day (no figure a week earlier)" in a.message
    put_usage(wh, d, 950)  # a 5 % dip is within the threshold
    assert detect_volume_anomalies(RunStateStore(wh), d, DEFAULT) == []


def test_without_a_previous_day_figure_nothing_is_decided(any_wh: Warehouse) -> None:
    d = date(2026, 10, 9)
    put_usage(any_wh, d - timedelta(days=7), 1000)
    put_usage(any_wh, d - timedelta(days=1), 1000, status="pending")  # not complete: no figure
    put_usage(any_wh, d, 100)
    (check,) = volume_checks(RunStateStore(any_wh), d, DEFAULT)
    assert check.previous_day_count is None and check.week_ago_count == 1000
    assert not check.anomalous and check.status == "pass" and check.observed == pytest.approx(0.9)
    assert "not compared (no baseline figure" in check.message
    put_usage(any_wh, d, 100, status="failed")  # and a day without its own figure is not checked at all
    assert volume_checks(RunStateStore(any_wh), d, DEFAULT) == []


def test_a_crm_snapshot_that_is_not_loaded_has_no_figure(wh: Warehouse) -> None:
    d = date(2026, 10, 9)
    put_crm(wh, d - timedelta(days=1), 1000)
    put_crm(wh, d, 10, status="failed")
    assert volume_checks(RunStateStore(wh), d, DEFAULT) == []


def test_exactly_the_threshold_is_not_a_drop_of_more_than_it(wh: Warehouse) -> None:
    d = date(2026, 10, 2)
    put_usage(wh, d - timedelta(days=1), 1000)
    put_usage(wh, d, 900)
    assert detect_volume_anomalies(RunStateStore(wh), d, DEFAULT) == []
    put_usage(wh, d, 899)
    assert len(detect_volume_anomalies(RunStateStore(wh), d, DEFAULT)) == 1


def _settings(**values: Any) -> Settings:
    return load_settings(**values)


def test_baseline_modes(wh: Warehouse, world: dict[date, tuple[int, int]]) -> None:
    feed(wh, world)
    sat = date(2026, 10, 17)
    previous_day = _settings(volume_usage_baseline="previous_day")
    assert [a.source for a in detect_volume_anomalies(RunStateStore(wh), sat, previous_day)] == [
        "usage"
    ]  # the dip
    assert detect_volume_anomalies(RunStateStore(wh), sat, _settings(volume_usage_baseline="week_ago")) == []
    off = _settings(volume_usage_baseline="off", volume_crm_baseline="off")
    assert volume_checks(RunStateStore(wh), sat, off) == []
    week_ago = _settings(volume_usage_baseline="week_ago")
    put_usage(wh, sat, int(world[sat][0] * 0.8))
    (a,) = detect_volume_anomalies(RunStateStore(wh), sat, week_ago)
    assert a.baseline == "week_ago" and a.observed == pytest.approx(a.week_ago_drop, abs=1e-6)
    assert "against the same weekday a week earlier" in a.message


def test_threshold_and_blocking_per_source(wh: Warehouse, world: dict[date, tuple[int, int]]) -> None:
    wed = date(2026, 10, 21)
    feed(wh, world, **{wed.isoformat(): (int(world[wed][0] * 0.75), int(world[wed][1] * 0.75))})
    lenient = _settings(volume_usage_threshold=0.3, volume_crm_blocking=True)
    (crm,) = detect_volume_anomalies(RunStateStore(wh), wed, lenient)
    assert crm.source == "crm" and crm.blocking and crm.status == "fail"
    assert crm.alert("r").severity == "error"
    assert crm.to_check_result().failed and crm.to_check_result().blocking


# == storing the results ====================================================================================
def test_results_are_stored_as_quality_results(any_wh: Warehouse, world: dict[date, tuple[int, int]]) -> None:
    wed = date(2026, 10, 21)
    feed(any_wh, world, **{wed.isoformat(): (int(world[wed][0] * 0.5), world[wed][1])})
    checks = volume_checks(RunStateStore(any_wh), wed, DEFAULT)
    record_volume_checks(RunStateStore(any_wh), "run-1", checks)
    record_volume_checks(RunStateStore(any_wh), "run-1", checks)  # idempotent per run, day and check
    rows = any_wh.execute(
        "select check_name, status, blocking, observed, threshold, details from ops.quality_results "
        "where run_id = 'run-1' and check_day = :d order by check_name",
        {"d": wed},
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("volume_crm", "pass", False),
        ("volume_usage", "warn", False),
    ]
    assert rows[1][3] == pytest.approx(checks[1].observed) and rows[1][3] > 0.45
    assert rows[1][4] == pytest.approx(0.10)
    assert rows[1][5] == checks[1].message
    # what `status` shows: the failed or warning checks of the day
    shown = any_wh.run("ops.sql", "quality_for_days", {"start_day": wed, "end_day": wed})
    assert [(r[1], r[2]) for r in shown] == [("volume_crm", "pass"), ("volume_usage", "warn")]
    record_volume_checks(RunStateStore(any_wh), "run-1", [])  # nothing to do


# == settings ==============================================================================================
def test_volume_settings_from_the_environment_and_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COMPANY_ACTIVITY_VOLUME_USAGE_THRESHOLD", "0.25")
    monkeypatch.setenv("COMPANY_ACTIVITY_VOLUME_USAGE_BASELINE", "Previous-Day")
    monkeypatch.setenv("COMPANY_ACTIVITY_VOLUME_USAGE_BLOCKING", "true")
    toml = tmp_path / "c.toml"
    toml.write_text(
        'volume_crm_threshold = 0.5\nvolume_crm_baseline = "week_ago"\nvolume_usage_threshold = 0.9\n'
    )
    s = load_settings(toml)
    assert (s.volume_usage_threshold, s.volume_usage_baseline, s.volume_usage_blocking) == (
        0.25,
        "previous_day",
        True,
    )  # the environment wins over the file
    assert (s.volume_crm_threshold, s.volume_crm_baseline, s.volume_crm_blocking) == (0.5, "week_ago", False)
    defaults = {k: f.default for k, f in Settings.model_fields.items() if k.startswith("volume_")}
    assert defaults == {
        "volume_crm_threshold": 0.1,
        "volume_crm_baseline": "both",
        "volume_crm_blocking": False,
        "volume_usage_threshold": 0.1,
        "volume_usage_baseline": "both",
        "volume_usage_blocking": False,
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [("VOLUME_USAGE_THRESHOLD", "0"), ("VOLUME_CRM_THRESHOLD", "1.5"), ("VOLUME_CRM_BASELINE", "monthly")],
)
def test_bad_volume_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    monkeypatch.setenv("COMPANY_ACTIVITY_" + key, value)
    with pytest.raises(ConfigError, match="COMPANY_ACTIVITY_" + key):
        load_settings()


# == the pure verdict =======================================================================================
counts = st.integers(min_value=0, max_value=10_000)


@given(counts, st.none() | counts, st.none() | counts, st.floats(min_value=0.01, max_value=1.0))
@example(count=0, prev=1, week=0, threshold=0.1)  # a week-old 0 is no usable figure: the previous day decides
@example(count=0, prev=0, week=5, threshold=0.1)  # a previous-day 0 is no usable figure: nothing is decided
@example(count=5, prev=10, week=None, threshold=0.1)
def test_both_means_a_drop_against_every_figure_there_is(
    count: int, prev: int | None, week: int | None, threshold: float
) -> None:
    """The README's rule: a baseline of 0 is no usable figure, exactly like a missing one."""
    check = evaluate_volume("usage", date(2026, 10, 21), count, prev, week, VolumeRule(threshold))

    def usable(base: int | None) -> bool:
        return base is not None and base > 0

    def dropped(base: int | None) -> bool:
        return base is not None and usable(base) and (base - count) / base > threshold

    expected = dropped(prev) and (not usable(week) or dropped(week))
    assert check.anomalous == expected
    assert check.status == ("warn" if expected else "pass")
    if expected and week is not None and not usable(week):
        assert "a week-earlier figure of 0 is no usable baseline" in check.message
        assert "on Wednesday a week earlier (no usable baseline)" in check.message
    if expected and week is None:
        assert "(no figure a week earlier)" in check.message
    if not usable(prev):
        assert "not compared (no baseline figure" in check.message


def test_a_week_old_zero_is_no_usable_figure_and_the_message_says_so() -> None:
    check = evaluate_volume("usage", date(2026, 10, 21), 0, 1, 0, VolumeRule(0.1))
    assert check.anomalous
    assert check.message == (
        "API usage records of 2026-10-21 dropped more than 10% against the previous day (a week-earlier "
        "figure of 0 is no usable baseline): 0 vs 1 the previous day (-100.0%); 0 on Wednesday a week "
        "earlier (no usable baseline)"
    )
    assert check.observed == 1.0


# == recovery notices =======================================================================================
def test_a_success_after_a_failure_is_a_recovery(any_wh: Warehouse) -> None:
    day = date(2026, 10, 21)

    def run(run_id: str, status: str, message: str | None = None) -> None:
        ledger = Ledger(any_wh, run_id)
        ledger.start_run("run")
        started = ledger.step_started("ingest_usage", day)
        ledger.step_finished(StepOutcome("ingest_usage", day, status, message=message), started)

    assert (
        previous_failure(RunStateStore(any_wh), run_id="r1", step="ingest_usage", day=day) is None
    )  # never ran
    run("r1", "failed", "API unavailable: 503 after 6 attempts")
    ledger = Ledger(any_wh, "r2")
    ledger.start_run("run")
    started = ledger.step_started("ingest_usage", day)  # r2 is running this step now: its row is ignored
    alert = recovery_alert(
        RunStateStore(any_wh),
        run_id="r2",
        step="ingest_usage",
        day=day,
        rerun="company-activity run --date 2026-10-21",
    )
    assert alert is not None
    assert (alert.kind, alert.severity, alert.step, alert.day, alert.run_id) == (
        "recovered",
        "info",
        "ingest_usage",
        day,
        "r2",
    )
    assert "API unavailable: 503 after 6 attempts" in alert.message
    assert recovery_alert(RunStateStore(any_wh), run_id="r2", step="build", day=day) is None  # another step
    assert (
        recovery_alert(RunStateStore(any_wh), run_id="r2", step="ingest_usage", day=day + timedelta(days=1))
        is None
    )
    ledger.step_finished(StepOutcome("ingest_usage", day, "succeeded"), started)
    assert (
        recovery_alert(RunStateStore(any_wh), run_id="r3", step="ingest_usage", day=day) is None
    )  # recovered already
    run("r3", "warning")
    run("r4", "failed", None)
    assert previous_failure(RunStateStore(any_wh), run_id="r5", step="ingest_usage", day=day) == "failed"
