"""``company-activity simulate-api``: serve the built-in product-usage API simulator."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from ..exits import exit_cannot_listen
from .data import SEASONALITIES
from .server import RETRY_AFTER_STYLES, SimulatorOptions, SimulatorServer, serve

__all__ = ["WORLD_DAYS", "default_epoch", "simulate_api", "world_from_config"]

#: the synthetic world starts this many days before today (the demo's default: 14 days of history,
#: whose companies started joining two weeks earlier), so `simulate-api` and `demo` share one world
WORLD_DAYS = 28
#: the keys of a config file's ``[simulator]`` table (written by `company-activity demo`)
WORLD_KEYS = {"seed": int, "companies": int, "epoch": str, "seasonality": str, "host": str, "port": int}
#: the world `simulate-api` serves unless told otherwise: the demo's (weekday seasonality in the user
#: counts, a level daily record count: see simulator/data.py)
WORLD_SEASONALITY = "users"


def default_epoch(today: date) -> date:
    """The start of the synthetic world when none is given: :data:`WORLD_DAYS` before ``today``."""
    return today - timedelta(days=WORLD_DAYS)


def world_from_config(path: str | Path) -> dict[str, Any]:
    """The ``[simulator]`` table of a TOML config file (``{}`` without one); bad keys are a UsageError."""
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh).get("simulator", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.UsageError(f"config file {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(table, dict):
        raise click.UsageError(f"config file {path}: [simulator] must be a table")
    for key, value in table.items():
        kind = WORLD_KEYS.get(key)
        if kind is None:
            raise click.UsageError(f"config file {path}: [simulator] has no setting {key!r}")
        if not isinstance(value, kind):
            raise click.UsageError(f"config file {path}: [simulator] {key} must be a {kind.__name__}")
    return table


_DEFAULTS = SimulatorOptions()
_DATE = click.DateTime(formats=["%Y-%m-%d"])
_RATE = click.FloatRange(0.0, 1.0)


def _day(value: datetime | None) -> date | None:
    return None if value is None else value.date()


def _days(values: tuple[datetime, ...]) -> frozenset[date]:
    return frozenset(v.date() for v in values)


@click.command(
    "simulate-api",
    epilog="Example:\n\n\b\n  company-activity simulate-api --port 8080 --companies 500 --error-rate 0.05",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0: any free port."
)
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, type=int, help="Seed of data and faults.")
@click.option(
    "--companies", default=_DEFAULTS.companies, show_default=True, type=click.IntRange(0), help="Population."
)
@click.option(
    "--epoch",
    type=_DATE,
    default=None,
    help=f"Start of the synthetic world: joiners join in its first 6 weeks [default: {WORLD_DAYS} days "
    "before today, the demo's world].",
)
@click.option(
    "--seasonality",
    type=click.Choice(SEASONALITIES),
    default=WORLD_SEASONALITY,
    show_default=True,
    help="What the weekday seasonality changes: 'users' (the demo's world: fewer users at weekends, as "
    "many companies, so the daily record count stays level) or 'companies' (fewer companies active at "
    "weekends too: the record count drops about a quarter on Saturdays).",
)
@click.option(
    "--today", type=_DATE, default=None, help="Pretend today is YYYY-MM-DD [default: the UTC clock]."
)
@click.option(
    "--retention-days",
    default=_DEFAULTS.retention_days,
    show_default=True,
    type=click.IntRange(0),
    help="Days older than today minus this answer 404 date_not_available.",
)
@click.option(
    "--not-final", "not_final", type=_DATE, multiple=True, help="A day that answers 409 (repeatable)."
)
@click.option(
    "--client-id",
    default=_DEFAULTS.client_id,
    show_default=True,
    help="OAuth2 client id ('' disables OAuth2).",
)
@click.option(
    "--client-secret", default=_DEFAULTS.client_secret, show_default=True, help="OAuth2 client secret."
)
@click.option(
    "--api-key", default=_DEFAULTS.api_key, show_default=True, help="API key ('' disables API keys)."
)
@click.option(
    "--token-ttl",
    default=_DEFAULTS.token_ttl,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0.001, min_open=False),
    default=None,
    help="Requests/s per client.",
)
@click.option(
    "--rate-limit-strict/--rate-limit-burst",
    default=False,
    show_default=True,
    help="Strict: a request sooner than 1/RATE after the last accepted one gets a 429 (no burst).",
)
@click.option("--error-rate", default=0.0, show_default=True, type=_RATE, help="Probability of a 5xx.")
@click.option("--rate-limited-rate", default=0.0, show_default=True, type=_RATE, help="Probability of a 429.")
@click.option(
    "--retry-after",
    type=click.Choice(RETRY_AFTER_STYLES),
    default=_DEFAULTS.retry_after,
    show_default=True,
    help="Retry-After style of 429s.",
)
@click.option(
    "--retry-after-seconds",
    default=_DEFAULTS.retry_after_seconds,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Retry-After of spurious 429s.",
)
@click.option(
    "--truncate-rate", default=0.0, show_default=True, type=_RATE, help="Probability of a cut body."
)
@click.option("--reset-rate", default=0.0, show_default=True, type=_RATE, help="Probability of a reset.")
@click.option(
    "--latency", default=0.0, show_default=True, type=click.FloatRange(0.0), help="Seconds per request."
)
@click.option(
    "--drip-interval",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Send each usage body one byte per this many seconds (0: off).",
)
@click.option(
    "--endless-cursor/--no-endless-cursor",
    default=False,
    show_default=True,
    help="After the last record, empty pages whose next_cursor never ends.",
)
@click.option(
    "--drift-fields/--no-drift-fields", default=False, show_default=True, help="Add unlisted record fields."
)
@click.option(
    "--duplicate-rate", default=0.0, show_default=True, type=_RATE, help="Probability a record is repeated."
)
@click.option(
    "--revoke-rate", default=0.0, show_default=True, type=_RATE, help="Probability a token is revoked."
)
@click.option(
    "--conflict-day",
    "conflict_days",
    type=_DATE,
    multiple=True,
    help="A day with two different records for one company.",
)
@click.option(
    "--bad-record-day", "bad_record_days", type=_DATE, multiple=True, help="A day with one invalid record."
)
@click.option(
    "--oversized-id-day",
    "oversized_id_days",
    type=_DATE,
    multiple=True,
    help="A day whose records include some with a 300-character company id (over the pipeline's cap).",
)
@click.option(
    "--oversized-id-count",
    default=1,
    show_default=True,
    type=click.IntRange(0, None),
    help="With --oversized-id-day: how many records of the day get such an id.",
)
@click.option(
    "--write-crm",
    "write_crm",
    default=None,
    metavar="LAKE",
    help="Before serving, write the matching CRM snapshot CSVs into this lake (folder or fsspec URL).",
)
@click.option(
    "--crm-days",
    default=14,
    show_default=True,
    type=click.IntRange(1, 3660),
    help="With --write-crm: how many days of snapshots, up to yesterday.",
)
@click.pass_context
def simulate_api(
    ctx: click.Context,
    host: str,
    port: int,
    seed: int,
    companies: int,
    epoch: datetime | None,
    seasonality: str,
    today: datetime | None,
    retention_days: int,
    not_final: tuple[datetime, ...],
    client_id: str,
    client_secret: str,
    api_key: str,
    token_ttl: float,
    rate_limit: float | None,
    rate_limit_strict: bool,
    error_rate: float,
    rate_limited_rate: float,
    retry_after: str,
    retry_after_seconds: float,
    truncate_rate: float,
    reset_rate: float,
    latency: float,
    drip_interval: float,
    endless_cursor: bool,
    drift_fields: bool,
    duplicate_rate: float,
    revoke_rate: float,
    conflict_days: tuple[datetime, ...],
    bad_record_days: tuple[datetime, ...],
    oversized_id_days: tuple[datetime, ...],
    oversized_id_count: int,
    write_crm: str | None,
    crm_days: int,
) -> None:
    """Serve the built-in product-usage API simulator (product-usage-api.md) until Ctrl-C.

    The data is synthetic and deterministic under --seed; the fault options make the API misbehave the
    way a real one does (5xx, 429 with Retry-After, resets, truncated bodies, revoked tokens, schema drift).
    With --config FILE, the file's [simulator] table (seed, companies, epoch, seasonality, host, port: what
    `company-activity demo` writes) gives the world and the address, unless an option says otherwise.
    A port that is taken exits 2 with one line naming it.
    """
    config_file = getattr(ctx.find_root().obj, "config_file", None)
    world = world_from_config(config_file) if config_file else {}

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT

    seed = seed if given("seed") else int(world.get("seed", seed))
    companies = companies if given("companies") else int(world.get("companies", companies))
    seasonality = seasonality if given("seasonality") else str(world.get("seasonality", seasonality))
    if seasonality not in SEASONALITIES:
        raise click.UsageError(
            f"config file {config_file}: [simulator] seasonality must be one of {', '.join(SEASONALITIES)}"
        )
    host = host if given("host") else str(world.get("host", host))
    port = port if given("port") else int(world.get("port", port))
    today_day = _day(today)
    world_epoch = date.fromisoformat(world["epoch"]) if "epoch" in world else None
    epoch_day = _day(epoch) or world_epoch or default_epoch(today_day or datetime.now(UTC).date())
    options = SimulatorOptions(
        seed=seed,
        companies=companies,
        epoch=epoch_day,
        seasonality=seasonality,
        today=today_day,
        retention_days=retention_days,
        not_final_days=_days(not_final),
        client_id=client_id or None,
        client_secret=client_secret or None,
        api_key=api_key or None,
        token_ttl=token_ttl,
        revoke_rate=revoke_rate,
        rate_limit=rate_limit,
        rate_limit_strict=rate_limit_strict,
        error_rate=error_rate,
        rate_limited_rate=rate_limited_rate,
        retry_after=retry_after,
        retry_after_seconds=retry_after_seconds,
        truncate_rate=truncate_rate,
        reset_rate=reset_rate,
        latency=latency,
        drip_interval=drip_interval,
        endless_cursor=endless_cursor,
        drift_fields=drift_fields,
        duplicate_rate=duplicate_rate,
        conflict_days=_days(conflict_days),
        bad_record_days=_days(bad_record_days),
        oversized_id_days=_days(oversized_id_days),
        oversized_id_count=oversized_id_count,
    )
    try:
        options.validate()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def banner(server: SimulatorServer) -> None:
        opts = server.options
        if write_crm is not None:  # once the port is ours: a port that is taken writes nothing
            _write_crm(options, write_crm, crm_days)
        click.echo(f"Product-usage API simulator listening on {server.url}")
        click.echo(
            f"  data: seed {opts.seed}, {opts.companies} companies, epoch {opts.epoch}, "
            f"seasonality {opts.seasonality}"
        )
        shown_today = opts.today.isoformat() if opts.today else f"{server.today()} (UTC clock)"
        click.echo(f"  today: {shown_today}; retention {opts.retention_days} days")
        click.echo(f"  export COMPANY_ACTIVITY_API_URL={server.url}")
        if opts.oauth_enabled:
            click.echo(f"  OAuth2: POST {server.url}/oauth/token")
            click.echo(f"  export COMPANY_ACTIVITY_API_CLIENT_ID={opts.client_id}")
            click.echo(f"  export COMPANY_ACTIVITY_API_CLIENT_SECRET={opts.client_secret}")
        if opts.api_key:
            click.echo(f"  API key (X-API-Key): export COMPANY_ACTIVITY_API_KEY={opts.api_key}")
        click.echo("Ctrl-C stops.")

    try:
        serve(options, host=host, port=port, ready=banner)
    except OSError as exc:
        exit_cannot_listen(host, port, exc, what="simulate-api")
    click.echo("Simulator stopped.")


def _write_crm(options: SimulatorOptions, lake_url: str, days: int) -> None:
    from ..storage import open_lake
    from .data import SyntheticData

    data = SyntheticData(
        seed=options.seed, companies=options.companies, epoch=options.epoch, seasonality=options.seasonality
    )
    yesterday = (options.today or datetime.now(UTC).date()) - timedelta(days=1)
    first = yesterday - timedelta(days=days - 1)
    try:
        lake = open_lake(lake_url)
        written = data.write_crm_snapshots(lake, [first + timedelta(days=k) for k in range(days)])
    except OSError as exc:  # not a listening problem: said as what it is
        raise click.ClickException(f"cannot write the CRM snapshots into {lake_url}: {exc}") from None
    click.echo(f"wrote {len(written)} CRM snapshots ({first} … {yesterday}) to {lake.url('crm/')}")
