"""``company-activity demo``: the whole pipeline on embedded defaults, with nothing to set up."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tomllib
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from .config import Settings
from .logs import configure
from .pipeline import Pipeline, RunReport
from .run.vocab import use_config_file
from .simulator import SimulatorOptions, SimulatorServer
from .simulator.cli import default_epoch
from .storage import open_lake


def run_demo(
    base: Settings,
    *,
    folder: str,
    days: int,
    companies: int,
    seed: int,
    echo: Callable[[str], None],
) -> int:
    configure(level="WARNING" if base.log_level == "INFO" else base.log_level, fmt=base.log_format)
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    lake_root = os.path.join(folder, "lake")
    # issue 13: a configured spark:ROOT is kept (its run state in the demo's state file, unless set)
    place = demo_warehouse(base, folder)
    # the demo starts from empty tables every time; on DuckDB the previous demo is moved aside, not lost
    moved = move_previous_demo(folder) if place.spark_root is None else None
    for stale in place.duckdb_files:
        for path in (stale, stale + ".wal", stale + ".lock"):
            if os.path.exists(path):
                os.remove(path)
    if place.spark_root is not None and place.duckdb_files:  # the run state is the demo's own too
        clear_spark_tables(place.spark_root)
    shutil.rmtree(lake_root, ignore_errors=True)
    if moved is not None:
        shown = _shown(os.path.join(moved, CONFIG_NAME))
        echo(f"moved the previous demo (warehouse, lake, settings) aside to {_shown(moved)}/")
        echo(f"  its status: {_command()} --config {shown} status")
    warehouse = place.warehouse
    today = base.today or datetime.now(UTC).date()
    first = today - timedelta(days=days)
    # the synthetic world starts two weeks before the demo's first day, so late joiners show up; with the
    # default 14 days it is the world `company-activity simulate-api` serves by default too
    epoch = min(default_epoch(today), first - timedelta(days=14))
    # the demo's world keeps its weekday seasonality in the user counts: the daily record count stays
    # level, so the volume check (a drop of more than 10 %) has nothing to say about a normal week
    options = SimulatorOptions(
        seed=seed, companies=companies, epoch=epoch, seasonality=DEMO_SEASONALITY, today=today
    )
    with SimulatorServer(options) as sim:
        last = today - timedelta(days=1)
        lake = open_lake(lake_root)
        written = sim.data.write_crm_snapshots(
            lake, [first + timedelta(days=k) for k in range(days)], template=base.crm_path
        )
        echo(f"API simulator on {sim.url} ({companies} companies, seed {seed}, fewer users at weekends)")
        echo(f"wrote {len(written)} CRM snapshots to {lake.url('crm/')}")
        settings = base.model_copy(
            update={
                "warehouse": warehouse,
                "state": place.state,
                "lake": lake_root,
                "api_url": sim.url,
                "api_client_id": options.client_id,
                "api_client_secret": _secret(options.client_secret),
                "api_key": None,
                "start_date": first,
                "today": today,
                "api_rate_limit": 1000.0,
            }
        )
        # the settings file first: the commands the run's alerts suggest carry it (`--config …`)
        config = write_config(
            folder,
            warehouse=warehouse,
            lake=lake_root,
            start=first,
            options=options,
            settings=base,
            state=place.state if place.spark_root is not None else None,
        )
        use_config_file(_shown(config))
        echo(f"running {first.isoformat()} … {last.isoformat()} into {warehouse}")
        with Pipeline(settings) as pipeline:
            report = pipeline.run()
            query = _querier(pipeline, spark=place.spark_root is not None)
            echo("")
            for line in day_table(query(DAY_SUMMARY, {}), report):
                echo(line)
            churn_rows = query(CHURN_RISK, {"day": last.isoformat()})
            echo("")
            echo(f"churn-risk companies on {last.isoformat()} (no usage for 7 days): {len(churn_rows)}")
            for company_id, name, contact in churn_rows[:20]:
                echo(f"  {company_id}  {name or '(not in CRM)'}  last contact {contact or '-'}")
            if len(churn_rows) > 20:
                echo(f"  … and {len(churn_rows) - 20} more")
        echo("")
        echo(f"{'FAILED' if report.failed else 'OK'}: run {report.run_id}, {len(report.built)} day(s) built")
        echo(f"warehouse: {warehouse}")
        if place.spark_root is not None:
            echo(f"run state: {place.state}")
        echo(f"lake:      {lake_root}  (raw API pages under raw/product_usage/, CRM under crm/)")
        echo(f"settings:  {config}  (the demo's world; every command below reads it)")
        echo("")
        ca = f"{_command()} --config {_shown(config)}"
        echo("carry on from here (each command reads the demo's settings):")
        echo(f"  each day's status:      {ca} status")
        echo(f"  what the run did:       {ca} runs show {report.run_id}")
        echo(f"  the web UI:             {ca} serve   (then open http://127.0.0.1:8080/)")
        echo(f"  the demo's API again:   {ca} simulate-api &   (the same world, on port {DEMO_PORT})")
        echo(
            f"  re-run a day:           {ca} rerun --date {last.isoformat()} --from-step ingest_crm   "
            "(all its steps again: its CRM file, its usage from that API, its build)"
        )
    logging.getLogger("company_activity").handlers.clear()
    return report.exit_code


#: the demo's summary, per day and of the last day's churn-risk companies; run as they are on DuckDB and,
#: translated like the model (:meth:`SparkDataEngine.query`), on Spark
DAY_SUMMARY = (
    "select activity_date, count(*), sum(case when active_users > 0 then 1 else 0 end), "
    "sum(active_users), sum(case when is_churn_risk then 1 else 0 end), "
    "sum(case when company_name is null then 1 else 0 end) "
    "from analytics.company_daily_activity group by activity_date order by activity_date"
)

#: the demo table's columns, in the words `status` uses for the same numbers (records, rows, …)
TABLE_HEADER = "day         CRM rows  records  rows  active companies  active users  churn risk  not in CRM"
#: what each column counts, printed under the table
TABLE_LEGEND = (
    "CRM rows: the day's CRM snapshot; records: the API's usage records of the day; rows: the day's rows in",
    "analytics.company_daily_activity (CRM rows + not in CRM); active companies: rows with active_users > 0",
    "(a record may have 0 active users); active users: their sum. `status` uses the same names.",
)


def day_table(summary: Sequence[tuple[Any, ...]], report: RunReport) -> list[str]:
    """The demo's per-day table: the run's CRM rows and API records, then the analytics rows' counts."""
    loaded = {(s.step, s.day): s.rows_loaded for s in report.steps if s.status == "succeeded"}
    lines = [TABLE_HEADER]
    for day, rows, active, users, churn, missing in summary:
        crm = _count(loaded.get(("ingest_crm", _as_date(day))))
        records = _count(loaded.get(("ingest_usage", _as_date(day))))
        lines.append(
            f"{_as_date(day).isoformat()}  {crm:>8}  {records:>7}  {rows:>4}  {active:>16}  "
            f"{int(users or 0):>12}  {churn:>10}  {missing:>10}"
        )
    return [*lines, "", *TABLE_LEGEND]


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


CHURN_RISK = (
    "select company_id, company_name, last_contact_at from analytics.company_daily_activity "
    "where activity_date = cast(:day as date) and is_churn_risk order by company_id"
)


class DemoWarehouse(NamedTuple):
    warehouse: str  # the demo folder's DuckDB file, or the configured spark:ROOT
    state: str  # where run state lives (the warehouse itself on DuckDB)
    spark_root: str | None  # ROOT of spark:ROOT (absolute when local)
    duckdb_files: tuple[str, ...]  # the DuckDB files the demo made and clears


def demo_warehouse(base: Settings, folder: str) -> DemoWarehouse:
    """Where the demo writes: ``folder/warehouse.duckdb``, or a configured ``spark:ROOT`` with its run state
    in ``folder/state.duckdb`` (``COMPANY_ACTIVITY_STATE`` when set: then the demo never clears it)."""
    from .warehouse.spark import parse_root

    root = parse_root(base.warehouse)
    if root is None:
        warehouse = os.path.join(folder, "warehouse.duckdb")
        return DemoWarehouse(warehouse, warehouse, None, (warehouse,))
    if "://" not in root and not root.startswith("file:"):
        root = os.path.abspath(os.path.expanduser(root))
    if base.state != Settings.model_fields["state"].default:  # set (COMPANY_ACTIVITY_STATE, --config)
        return DemoWarehouse(f"spark:{root}", base.state, root, ())
    state = os.path.join(folder, "state.duckdb")
    return DemoWarehouse(f"spark:{root}", state, root, (state,))


#: the file the demo leaves in a spark:ROOT it made (readers skip names starting with "_")
DEMO_MARK = "_company_activity_demo"


def clear_spark_tables(root: str) -> None:
    """Remove the Spark tables the demo wrote under a local ``root`` last time, and nothing else.

    A root on a cluster file system (``abfss://``, ``s3a://``, ...) is never cleared; a local root holding
    tables the demo did not make (no mark file) is refused: the demo never deletes what it did not write.
    """
    from .errors import ConfigError
    from .warehouse.spark.tables import TABLES

    if "://" in root or root.startswith("file:"):
        return
    tables = [os.path.join(root, t.path) for t in TABLES]
    mark = os.path.join(root, DEMO_MARK)
    if any(os.path.exists(t) for t in tables) and not os.path.isfile(mark):
        raise ConfigError(
            f"the demo's warehouse spark:{root} holds tables the demo did not write ({DEMO_MARK} is "
            "missing): the demo starts from empty tables and deletes only its own; choose another ROOT"
        )
    for path in [*tables, os.path.join(root, "_tmp")]:
        shutil.rmtree(path, ignore_errors=True)
    for parent in sorted({os.path.dirname(t) for t in tables}):
        if os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)
    os.makedirs(root, exist_ok=True)
    with open(mark, "w", encoding="utf-8") as fh:
        fh.write("written by `company-activity demo`: it clears this folder's tables on its next run\n")


def _querier(pipeline: Pipeline, *, spark: bool) -> Callable[[str, dict[str, object]], list[tuple[Any, ...]]]:
    """Runs one of the demo's queries on the pipeline's data engine (DuckDB, or Spark's tables)."""
    if spark:
        from .warehouse.spark.adapter import SparkDataEngine

        engine = pipeline.app.engine
        assert isinstance(engine, SparkDataEngine)
        return engine.query
    return lambda sql, params: [tuple(r) for r in pipeline.wh.execute(sql, params)]


#: the port of the demo's API when a user starts it again with `simulate-api --config …`
DEMO_PORT = 8765
#: the demo's world: weekday seasonality in the user counts only (a level daily record count)
DEMO_SEASONALITY = "users"
#: the demo's folder by default (``company-activity demo --dir``), its settings file and where the
#: previous demo is moved when the demo runs again
DEFAULT_DIR = os.path.join(".", "data", "demo")
CONFIG_NAME = "company-activity.toml"
PREVIOUS_DIR = "previous"


def move_previous_demo(folder: str) -> str | None:
    """Move what the last demo in ``folder`` made (its DuckDB warehouse, lake and settings) into
    ``folder/previous/``, replacing the one kept there before; its settings are rewritten to point at the
    moved warehouse and lake. Returns that folder, or None when ``folder`` holds no earlier warehouse."""
    warehouse = os.path.join(folder, "warehouse.duckdb")
    if not os.path.isfile(warehouse):
        return None
    target = os.path.join(folder, PREVIOUS_DIR)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal", "lake"):
        if os.path.exists(os.path.join(folder, name)):
            os.replace(os.path.join(folder, name), os.path.join(target, name))
    config = os.path.join(folder, CONFIG_NAME)
    if os.path.isfile(config):
        _rewrite_config(config, os.path.join(target, CONFIG_NAME), folder, target)
        os.remove(config)
    return target


def _rewrite_config(source: str, dest: str, old: str, new: str) -> None:
    """The demo's settings file ``source`` as ``dest``, its paths below ``old`` now below ``new``."""
    try:
        with open(source, "rb") as fh:
            values = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return  # not one the demo wrote: left out of the move, and replaced below
    world = values.pop("simulator", {})
    for key in ("warehouse", "state", "lake"):
        value = values.get(key)
        if isinstance(value, str) and value.startswith(old + os.sep):
            values[key] = new + value[len(old) :]
    _write_toml(dest, values, world if isinstance(world, dict) else {})


def write_config(
    folder: str,
    *,
    warehouse: str,
    lake: str,
    start: date,
    options: SimulatorOptions,
    settings: Settings,
    state: str | None = None,
) -> str:
    """Write the demo's settings (and its simulator's world) to ``folder/company-activity.toml``."""
    path = os.path.join(folder, CONFIG_NAME)
    values: dict[str, object] = {
        "warehouse": warehouse,
        "state": state,
        "lake": lake,
        "crm_path": settings.crm_path,
        "api_url": f"http://127.0.0.1:{DEMO_PORT}",
        "api_client_id": options.client_id,
        "api_client_secret": options.client_secret,
        "start_date": start.isoformat(),
        "api_rate_limit": 100.0,
    }
    world: dict[str, object] = {
        "seed": options.seed,
        "companies": options.companies,
        "epoch": options.epoch.isoformat(),
        "seasonality": options.seasonality,
        "host": "127.0.0.1",
        "port": DEMO_PORT,
    }
    _write_toml(path, values, world)
    return path


def _write_toml(path: str, values: dict[str, object], world: dict[str, object]) -> None:
    lines = [
        "# written by `company-activity demo`: the demo's warehouse, lake and API simulator.",
        "# Start the demo's API with `company-activity simulate-api --config THIS_FILE`, then use",
        "# `company-activity --config THIS_FILE <command>` (run, rerun, status, runs, serve, …).",
        *(f"{key} = {_toml(value)}" for key, value in values.items() if value is not None),
        "",
        "[simulator]",
        *(f"{key} = {_toml(value)}" for key, value in world.items()),
    ]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string: the same escapes as JSON


def _command() -> str:
    """How to call company-activity: the console script beside this Python, else ``python -m``."""
    script = os.path.join(os.path.dirname(sys.executable), "company-activity")
    if os.path.exists(script):
        return _shown(script)
    return f"{_shown(sys.executable)} -m company_activity"


def _secret(value: str | None) -> object:
    from pydantic import SecretStr

    return SecretStr(value) if value else None


def _shown(path: str) -> str:
    """``path`` relative to the current folder when it lies below it (``.venv/bin/python``)."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path
