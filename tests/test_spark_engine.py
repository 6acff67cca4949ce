"""The Spark engine (warehouse/spark) against the DuckDB engine and the spec's model, on a real local Spark.

One Spark session (``local[2]``) serves every test of the module; each test gets its own table root. The
build on Spark must give row for row (values and Python types) the table DuckDB gives on the same staged
inputs: the worked example, generated histories (the property test of test_build.py) and 30 days of the
simulator's synthetic data. Then the file-level promises: one day's partition replaced at a time, a
rebuild that changes nothing leaves every file as it was, unchanged rows keep record_loaded_at, a crash
before the swap leaves the previous partition readable, and hostile values round-trip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from company_activity.errors import ConfigError, WarehouseError
from company_activity.run import plan
from company_activity.simulator.data import SyntheticData
from company_activity.warehouse import Warehouse
from company_activity.warehouse.spark import parse_root
from company_activity.warehouse.spark.session import parse_conf

from .helpers import Attrs, Model, days, seed_and_build
from .test_build import NOV, d, histories

pyspark = pytest.importorskip("pyspark", reason="the Spark engine needs the [spark] extra")

from company_activity.warehouse.spark import SparkEngine  # noqa: E402

AT = datetime(2026, 12, 1)
ANALYTICS = (
    "select activity_date, company_id, company_name, country, industry_tag, last_contact_at, active_users, "
    'events, "7d_active_users", is_churn_risk, record_loaded_at from analytics.company_daily_activity '
    "order by activity_date, company_id"
)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from company_activity.warehouse.spark.session import start_session

    session = start_session(
        "local[2]", {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"}
    )
    yield session
    session.stop()


@pytest.fixture
def engine(spark: Any, tmp_path: Path) -> SparkEngine:
    return SparkEngine(str(tmp_path / "tables"), session=spark)


@pytest.fixture
def daily_engine(spark: Any, tmp_path: Path) -> SparkEngine:
    """The daily table alone (the marts are checked against DuckDB's in test_spark_pipeline.py)."""
    return SparkEngine(str(tmp_path / "tables"), session=spark, build_marts=False)


# -- seeding and building, as the pipeline's runner will ---------------------------------------------------


def stage(
    engine: SparkEngine,
    crm: Mapping[date, Mapping[str, Attrs]],
    usage: Mapping[date, Mapping[str, tuple[int, int]]],
    complete: list[date],
) -> None:
    for day, companies in crm.items():
        rows = [(cid, *attrs) for cid, attrs in companies.items()]
        engine.replace_crm_day(day, rows, source_file="test.csv", loaded_at=AT, run_id="test")
    for day in complete:
        rows = [(cid, u, e) for cid, (u, e) in usage[day].items()]
        engine.replace_usage_day(day, rows, raw_run_id="test", loaded_at=AT)


def build(engine: SparkEngine, all_days: list[date], complete: list[date], at: datetime = AT) -> list[Any]:
    """Build every day the gate lets through, segment by segment (as the plan's gate decides)."""
    if not complete:
        return []
    first = min(complete)
    done = set(complete)
    ok = [day for day in all_days if not plan.gate_missing(day, done, first)]
    built = []
    for s, e in plan.segments(ok):
        built += engine.build_segment(s, e, complete_days=done, first_usage_day=first, loaded_at=at)
    return built


def duck_rows(wh: Warehouse) -> list[tuple[object, ...]]:
    return [tuple(r) for r in wh.execute(ANALYTICS)]


def assert_same(spark_rows: list[tuple[Any, ...]], duck: list[tuple[Any, ...]]) -> None:
    assert len(spark_rows) == len(duck)
    for a, b in zip(spark_rows, duck, strict=True):
        assert a == b
        assert [type(x) for x in a] == [type(x) for x in b]


def worked_example() -> tuple[dict[date, dict[str, Attrs]], dict[date, dict[str, tuple[int, int]]]]:
    crm: dict[date, dict[str, Attrs]] = {}
    usage: dict[date, dict[str, tuple[int, int]]] = {}
    for day in days(d(1), d(11)):
        crm[day] = {
            "A": ("Acme Corp" if day >= d(5) else "Acme", "DE", "saas", None),
            "B": ("Beta", "FR", None, datetime(2026, 10, 1, 12, 30)),
        }
        if day >= d(5):
            crm[day]["C"] = ("Gamma", None, "retail", None)
        usage[day] = {}
        if day != d(4):
            usage[day]["A"] = (10, 100)
        if day == d(1):
            usage[day]["B"] = (3, 5)
        if day == d(6):
            usage[day]["X"] = (1, 1)
    return crm, usage


ELEVEN = days(d(1), d(11))


def files(root: Path) -> dict[str, int]:
    """Every file under the table root (outside _tmp), with its modification time in ns."""
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if not rel.startswith("_tmp"):
                out[rel] = p.stat().st_mtime_ns
    return out


# -- the same table as DuckDB ------------------------------------------------------------------------------


def test_worked_example_same_as_duckdb(daily_engine: SparkEngine, wh: Warehouse) -> None:
    engine = daily_engine
    crm, usage = worked_example()
    stage(engine, crm, usage, ELEVEN)
    built = build(engine, ELEVEN, ELEVEN)
    seed_and_build(wh, crm, usage, ELEVEN, ELEVEN)
    rows = engine.rows()
    assert len(rows) == 30
    assert_same(rows, duck_rows(wh))
    t = {(r[0], r[1]): r for r in rows}
    assert (t[(d(8), "B")][8], t[(d(8), "B")][9]) == (0, True)
    assert t[(d(11), "A")][8] == 70
    assert t[(d(6), "X")][2:6] == (None, None, None, None)
    # the day summaries match the ones DuckDB's build returns
    assert [(b.day, b.row_count, b.churn_risk_count, b.missing_crm_count) for b in built][5:8] == [
        (d(6), 4, 0, 1),
        (d(7), 3, 0, 0),
        (d(8), 3, 1, 0),
    ]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories(), gap=st.integers(min_value=0, max_value=20))
def test_generated_histories_match_model_and_duckdb(
    spark: Any,
    tmp_path_factory: pytest.TempPathFactory,
    wh: Warehouse,
    history: tuple[dict[date, dict[str, Attrs]], dict[date, dict[str, tuple[int, int]]], int],
    gap: int,
) -> None:
    crm, usage, n_days = history
    all_days = days(NOV, NOV + timedelta(days=n_days - 1))
    complete = [day for i, day in enumerate(all_days) if i != gap]
    engine = SparkEngine(str(tmp_path_factory.mktemp("tables")), session=spark, build_marts=False)
    stage(engine, crm, usage, complete)
    build(engine, all_days, complete)
    rows = engine.rows()
    model = Model(crm, {day: usage[day] for day in complete}, complete).rows()
    assert {(r[0], r[1]): r[2:10] for r in rows} == model
    seed_and_build(wh, crm, usage, all_days, complete)
    assert_same(rows, duck_rows(wh))


def test_thirty_simulated_days_same_as_duckdb(spark: Any, tmp_path: Path, wh: Warehouse) -> None:
    # each published day spread over three files, as a large day would be
    engine = SparkEngine(str(tmp_path / "tables"), session=spark, files_per_day=3, build_marts=False)
    data = SyntheticData(seed=5, companies=120, epoch=date(2026, 1, 1))
    thirty = days(date(2026, 11, 2), date(2026, 12, 1))
    snapshot_days = [day for i, day in enumerate(thirty) if i % 4 != 3]  # some days without a snapshot
    crm = {
        day: {
            r.company_id: (
                r.name,
                r.country,
                r.industry_tag,
                r.last_contact_at.replace(tzinfo=None) if r.last_contact_at else None,
            )
            for r in data.crm_snapshot(day)
        }
        for day in snapshot_days
    }
    usage = {day: {r.company_id: (r.active_users, r.events) for r in data.usage(day)} for day in thirty}
    stage(engine, crm, usage, thirty)
    # two segments, as a nightly run after a backfill would build them
    build(engine, thirty[:20], thirty)
    build(engine, thirty[20:], thirty)
    seed_and_build(wh, crm, usage, thirty, thirty)
    rows = engine.rows()
    assert {r[0] for r in rows} == set(thirty)
    assert any(r[9] for r in rows) and not all(r[9] for r in rows)  # both churn outcomes are compared
    assert any(r[2] is None for r in rows)  # companies missing from the CRM too
    assert_same(rows, duck_rows(wh))
    per_day = [
        sum(1 for f in p.iterdir() if f.suffix == ".parquet")
        for p in (tmp_path / "tables" / "analytics" / "company_daily_activity").iterdir()
    ]
    assert len(per_day) == 30 and max(per_day) > 1


# -- partitions, files and record_loaded_at ----------------------------------------------------------------


def test_partition_replace_and_no_change_rebuild_leave_files_alone(
    engine: SparkEngine, tmp_path: Path
) -> None:
    root = tmp_path / "tables"
    crm, usage = worked_example()
    stage(engine, crm, usage, ELEVEN)
    build(engine, ELEVEN, ELEVEN)
    before = files(root)
    assert any(k.startswith("analytics/company_daily_activity/activity_date=2026-11-11/") for k in before)
    assert all(".parquet" in k or k.endswith(".crc") for k in before)

    # a rebuild that changes nothing, a day later: every file as it was
    build(engine, ELEVEN, ELEVEN, at=datetime(2026, 12, 2))
    assert files(root) == before

    # usage of 11-06 re-ingested with a change: only that staging day and the built days 11-06 … 11-11
    usage[d(6)] = {"A": (12, 100), "X": (1, 1)}
    engine.replace_usage_day(d(6), [("A", 12, 100), ("X", 1, 1)], raw_run_id="again", loaded_at=AT)
    build(engine, days(d(6), d(11)), ELEVEN, at=datetime(2026, 12, 2))
    after = files(root)
    changed_dirs = {k.rsplit("/", 1)[0] for k in set(before.items()) ^ set(after.items()) for k in [k[0]]}
    expected = {"stg/product_usage_daily/activity_date=2026-11-06"} | {
        f"analytics/{table}/activity_date={day.isoformat()}"
        for day in days(d(6), d(11))
        for table in ("company_daily_activity", "activity_summary_daily")
    }
    # and the marts' periods holding those days: two ISO weeks, one month
    expected |= {f"analytics/company_weekly_activity/week_start=2026-11-{n:02d}" for n in (2, 9)}
    expected |= {"analytics/company_monthly_activity/month_start=2026-11-01"}
    assert changed_dirs == expected

    # only the changed rows carry the new record_loaded_at
    newer = [(r[0], r[1]) for r in engine.rows() if r[10] == datetime(2026, 12, 2)]
    assert newer == [(day, "A") for day in days(d(6), d(11))]
    assert engine.read_day(d(11))[0][8] == 72


def test_crash_before_swap_leaves_previous_partition(engine: SparkEngine) -> None:
    crm, usage = worked_example()
    stage(engine, crm, usage, ELEVEN)
    build(engine, ELEVEN, ELEVEN)
    old_8 = engine.read_day(d(8))
    engine.replace_usage_day(d(8), [("A", 10, 100), ("B", 7, 7)], raw_run_id="again", loaded_at=AT)

    def crash(table: Any, day: date) -> None:
        if day == d(8):
            raise RuntimeError("killed before the swap")

    engine.before_swap = crash
    with pytest.raises(RuntimeError, match="killed"):
        build(engine, days(d(8), d(11)), ELEVEN, at=datetime(2026, 12, 3))
    assert engine.read_day(d(8)) == old_8  # the previous partition, whole and readable
    assert engine.count() == 30
    # a crashed staging load leaves the previous staging day too
    with pytest.raises(RuntimeError, match="killed"):
        engine.replace_usage_day(d(8), [("A", 1, 1)], raw_run_id="x", loaded_at=AT)
    assert [r[1:4] for r in engine.read_day(d(8), "stg.product_usage_daily")] == [
        ("A", 10, 100),
        ("B", 7, 7),
    ]
    engine.before_swap = None
    engine.clean_tmp()
    assert not (Path(engine.root.removeprefix("file:")) / "_tmp").exists()
    build(engine, days(d(8), d(11)), ELEVEN, at=datetime(2026, 12, 3))
    day8 = {r[1]: r for r in engine.read_day(d(8))}
    assert (day8["B"][6], day8["B"][9], day8["B"][10]) == (7, False, datetime(2026, 12, 3))


def test_a_failed_mart_write_changes_no_mart_and_the_next_build_writes_them(
    engine: SparkEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three marts are written at once (one thread each): one failing write means no mart partition
    is swapped in, nothing is left under _tmp, and the days stay pending for the next build."""
    from company_activity.warehouse.spark import marts

    root = tmp_path / "tables"
    crm, usage = worked_example()
    stage(engine, crm, usage, ELEVEN)
    build(engine, ELEVEN, ELEVEN)
    marts_before = {
        k: v for k, v in files(root).items() if not k.startswith(("analytics/company_daily", "stg/"))
    }
    weekly_before = engine.rows("analytics.company_weekly_activity")
    engine.replace_usage_day(d(8), [("A", 10, 100), ("B", 7, 7)], raw_run_id="again", loaded_at=AT)

    write = marts._write

    def failing(eng: SparkEngine, table: Any, new: Any, periods: list[date], tmp: str) -> None:
        if table is marts.WEEKLY:
            raise WarehouseError("Spark engine: injected failure writing the weekly mart")
        write(eng, table, new, periods, tmp)

    monkeypatch.setattr(marts, "_write", failing)
    with pytest.raises(WarehouseError, match="weekly mart"):
        build(engine, days(d(8), d(11)), ELEVEN, at=datetime(2026, 12, 3))
    after = files(root)
    assert {k: v for k, v in after.items() if k in marts_before} == marts_before  # no mart file touched
    assert set(marts_before) <= set(after)
    pending = [p.name for p in (root / marts.PENDING).iterdir()]
    assert pending == ["2026-11-08_2026-11-11"]  # the 7-day sums of 11-08 … 11-11 changed
    assert not (root / "_tmp").exists() or not any((root / "_tmp").iterdir())
    assert (7, 7) in [(r[6], r[7]) for r in engine.read_day(d(8))]  # the day itself is published

    monkeypatch.setattr(marts, "_write", write)
    build(engine, days(d(8), d(11)), ELEVEN, at=datetime(2026, 12, 4))  # nothing new: only the pending marts
    assert not (root / marts.PENDING).exists()
    weekly = {(r[0], r[4]): r for r in engine.rows("analytics.company_weekly_activity")}
    old = {(r[0], r[4]): r for r in weekly_before}
    week = date(2026, 11, 2)  # the ISO week of 11-08: B's events of 11-08 now count
    assert weekly[(week, "B")][13] == old[(week, "B")][13] + 7
    assert weekly[(week, "B")][16] == datetime(2026, 12, 4)


def test_hostile_values_round_trip_and_any_parquet_reader_reads_them(
    engine: SparkEngine, tmp_path: Path
) -> None:
    nasty = [
        "nul\x00inside",
        "x" * 100_000,
        'cr\r\nlf, "quoted", comma',
        "Zürich — 東京 🚀",
        "  spaces kept  ",
    ]
    crm: dict[date, dict[str, Attrs]] = {
        d(1): {
            f"id,{i}\x00\r\n": (v, v[:10], None, datetime(2026, 10, 31, 23, 59, 59, 999999))
            for i, v in enumerate(nasty)
        }
    }
    big = 2**62 + 1
    usage = {d(1): {"id,0\x00\r\n": (big, big + 5), "U\u00e9": (1, 2)}}
    stage(engine, crm, usage, [d(1)])
    build(engine, [d(1)], [d(1)])
    rows = {r[1]: r for r in engine.read_day(d(1))}
    assert len(rows) == 6
    for i, v in enumerate(nasty):
        assert rows[f"id,{i}\x00\r\n"][2:6] == (v, v[:10], None, datetime(2026, 10, 31, 23, 59, 59, 999999))
    assert rows["id,0\x00\r\n"][6:9] == (big, big + 5, big)
    # DuckDB reads the Parquet table as it is: the spec's column names, the day from the directory
    path = tmp_path / "tables" / "analytics" / "company_daily_activity" / "**" / "*.parquet"
    con = duckdb.connect()
    got = con.execute(
        f"select activity_date, company_id, company_name, \"7d_active_users\" from read_parquet('{path}', "  # noqa: S608
        "hive_partitioning = true) where company_id = ?",
        ["id,0\x00\r\n"],
    ).fetchall()
    assert got == [(d(1), "id,0\x00\r\n", nasty[0], big)]
    names = [c[0] for c in con.execute(f"describe select * from read_parquet('{path}')").fetchall()]  # noqa: S608
    assert names[:10] == [
        "company_id",
        "company_name",
        "country",
        "industry_tag",
        "last_contact_at",
        "active_users",
        "events",
        "7d_active_users",
        "is_churn_risk",
        "record_loaded_at",
    ]


def test_a_spark_failure_is_a_warehouse_error_naming_the_days(engine: SparkEngine, tmp_path: Path) -> None:
    crm, usage = worked_example()
    stage(engine, crm, usage, ELEVEN[:3])
    bad = (
        tmp_path
        / "tables"
        / "stg"
        / "product_usage_daily"
        / "activity_date=2026-11-02"
        / "part-00000.parquet"
    )
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(WarehouseError, match=r"building 2026-11-01 … 2026-11-03 failed"):
        build(engine, ELEVEN[:3], ELEVEN[:3])
    assert engine.count() == 0


def test_next_snapshot_after(engine: SparkEngine) -> None:
    for day in (d(1), d(4), d(9)):
        engine.replace_crm_day(day, [("A", "a", None, None, None)], source_file="f", loaded_at=AT, run_id="r")
    assert engine.crm_snapshot_days() == [d(1), d(4), d(9)]
    assert engine.next_snapshot_after(d(1)) == d(4)
    assert engine.next_snapshot_after(d(4)) == d(9)
    assert engine.next_snapshot_after(d(9)) is None
    # staging keeps the load metadata: source file, line, run
    assert engine.read_day(d(4), "stg.crm_daily")[0][6:] == ("f", 2, AT, "r")


# -- settings (no Spark needed) ----------------------------------------------------------------------------


def test_the_local_python_workers_run_the_drivers_interpreter(spark: Any) -> None:
    """Not the `python3` on PATH (maybe another version: Spark refuses a worker whose differs)."""
    import sys

    assert spark.sparkContext.pythonExec == sys.executable
    # createDataFrame from Python rows runs Python workers: they start, and give the rows back
    assert spark.createDataFrame([(1, "a")], "n int, s string").collect() == [(1, "a")]


def test_spark_conf_pairs_and_files(tmp_path: Path) -> None:
    assert parse_conf("spark.executor.memory=4g, spark.sql.shuffle.partitions=400") == {
        "spark.executor.memory": "4g",
        "spark.sql.shuffle.partitions": "400",
    }
    conf = tmp_path / "spark.conf"
    conf.write_text("# cluster\nspark.executor.cores 4\nspark.hadoop.fs.azure.account.auth.type=OAuth\n")
    assert parse_conf(str(conf)) == {
        "spark.executor.cores": "4",
        "spark.hadoop.fs.azure.account.auth.type": "OAuth",
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_conf("nonsense, spark.x=1")
    # a comma or semicolon parts pairs only before the next dotted key: lists and JDBC URLs stay whole
    derby = "jdbc:derby:;databaseName=/m/metastore_db;create=true"
    sqlserver = "jdbc:sqlserver://h.database.windows.net:1433;databaseName=metastore;encrypt=true"
    assert parse_conf(
        f"spark.jars.packages=a:b:1,c:d:2; spark.hadoop.javax.jdo.option.ConnectionURL={derby},"
        f"spark.sql.catalogImplementation=hive\nspark.hadoop.hive.metastore.uris = {sqlserver}"
    ) == {
        "spark.jars.packages": "a:b:1,c:d:2",
        "spark.hadoop.javax.jdo.option.ConnectionURL": derby,
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.hive.metastore.uris": sqlserver,
    }
    conf.write_text(f"spark.hadoop.javax.jdo.option.ConnectionURL {derby}\nspark.jars.packages a:b:1, c:d:2")
    assert parse_conf(str(conf)) == {
        "spark.hadoop.javax.jdo.option.ConnectionURL": derby,
        "spark.jars.packages": "a:b:1, c:d:2",
    }
    assert parse_root("spark:./data/tables") == "./data/tables"
    assert parse_root("spark:abfss://c@a.dfs.core.windows.net/t") == "abfss://c@a.dfs.core.windows.net/t"
    assert parse_root("./warehouse.duckdb") is None


# -- a persistent catalog ----------------------------------------------------------------------------------


def test_the_tables_are_registered_in_the_sessions_catalog_and_kept_in_sync(
    spark: Any, tmp_path: Path
) -> None:
    """With a persistent catalog (Hive, Unity) the engine registers every table under the spec's name.
    The test session's catalog is Spark's in-memory one (not persistent: nothing registered by default),
    so registration is forced here; the same statements then run on it for real."""
    from company_activity.warehouse.spark.catalog import is_persistent, statements
    from company_activity.warehouse.spark.tables import TABLES, WEEKLY

    assert not is_persistent(spark)
    assert SparkEngine(str(tmp_path / "other"), session=spark).catalog is None
    engine = SparkEngine(str(tmp_path / "tables"), session=spark, register=True)
    try:
        crm, usage = worked_example()
        stage(engine, crm, usage, ELEVEN)
        build(engine, ELEVEN, ELEVEN)
        listed = {
            f"{db}.{t.name}"
            for db in ("stg", "analytics")
            for t in spark.catalog.listTables(db)
            if not t.isTemporary
        }
        assert listed == {t.name for t in TABLES}
        cols = [f"`{n}`" for n, _ in TABLES[2].columns]
        table = spark.table("analytics.company_daily_activity").select(*cols)
        assert sorted(tuple(r) for r in table.collect()) == engine.rows()
        weeks = [r[0] for r in spark.sql("show partitions analytics.company_weekly_activity").collect()]
        assert weeks == [f"week_start={w}" for w in sorted({r[0] for r in engine.rows(WEEKLY.name)})]
        assert spark.table("stg.product_usage_daily").count() == engine.count("stg_product_usage_daily")

        # a partition the engine deletes (every row of a day gone) is dropped from the catalog too
        engine.replace_usage_day(d(11), [], raw_run_id="test", loaded_at=AT)
        usage_days = spark.sql("show partitions stg.product_usage_daily").collect()
        assert len(usage_days) == len(ELEVEN)  # an empty day is still a partition (one empty file)
        engine.files.delete(f"{TABLES[1].path}/activity_date={d(11).isoformat()}")
        engine.sync_catalog(TABLES[1])
        assert len(spark.sql("show partitions stg.product_usage_daily").collect()) == len(ELEVEN) - 1
    finally:
        for db in ("stg", "analytics"):
            spark.sql(f"drop database if exists {db} cascade")  # external tables: the files stay
    assert statements(WEEKLY, "abfss://c@a.dfs.core.windows.net/it's", create=True)[1].endswith(
        "partitioned by (`week_start`) location 'abfss://c@a.dfs.core.windows.net/it\\'s'"
    )
