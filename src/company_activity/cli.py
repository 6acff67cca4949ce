"""The command line: thin over :mod:`company_activity.pipeline`.

Exit status: 0 everything succeeded (warnings allowed); 1 the pipeline ran and a step or check failed
(alerts were sent), or its deadline passed, or an expected OS error (the path and the cause are named);
2 bad arguments or configuration (the message says which; nothing was touched); 130 stopped by Ctrl-C
(SIGINT), 143 stopped by SIGTERM (the run is recorded as interrupted; the next run picks up the rest).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from typing import Any

import click

from .cli_support import Context, echo, errors, parse_date, print_report, setup_logging
from .cli_views import runs, status
from .config import Settings
from .errors import ConfigError
from .exits import EXIT_CODES
from .interrupts import exit_now_if_stuck, handle_signals
from .pipeline import Pipeline, Planner, RunReport, plan_read_only
from .preflight import check_closed_day, check_range, check_settings
from .progress_view import RunProgress
from .run.plan import RunPlan, segments
from .run.vocab import use_config_file
from .simulator.cli import simulate_api
from .stopping import StopSignal

#: the group's options that may also stand after the sub-command (`company-activity run --config f.toml`)
_HOISTED = ("--config", "--log-level", "--log-format")


class _Group(click.Group):
    """A click group whose global options are accepted anywhere on the command line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_options(args, _HOISTED))


def hoist_options(args: list[str], names: tuple[str, ...]) -> list[str]:
    """``args`` with ``NAME VALUE`` / ``NAME=VALUE`` of ``names`` moved to the front (in their order).

    Everything after a ``--`` stays where it is.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in names and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 2
            continue
        if arg.split("=", 1)[0] in names and "=" in arg:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML file with settings (lower-case keys without the COMPANY_ACTIVITY_ prefix); "
    "the environment wins. Accepted anywhere on the command line.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Log level (default INFO).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as text or JSON lines (default text).",
)
@click.version_option(package_name="company-activity")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, log_level: str | None, log_format: str | None) -> None:
    """company-activity: CRM snapshots + product-usage API -> analytics.company_daily_activity.

    \b
    Try it with no set-up at all:
        company-activity demo
    Nightly, against a real API:
        COMPANY_ACTIVITY_API_URL=https://usage.example.com company-activity run
    """
    ctx.obj = Context(config_file, log_level, log_format)
    use_config_file(config_file)  # every command the output suggests carries the same --config


def _pipeline(ctx: click.Context, **overrides: Any) -> Pipeline:
    settings = ctx.obj.settings(**overrides)
    check_settings(settings, needs_api=False)  # the whole configuration, before anything is touched
    setup_logging(settings)
    return Pipeline(settings)


Check = Callable[[Settings], None]


def _execute(
    ctx: click.Context,
    action: Callable[[Pipeline, Callable[[str, date], None] | None], RunReport],
    *,
    progress_days: int = 0,
    label: str = "ingesting",
    needs_api: bool = True,
    check: Check | None = None,
) -> None:
    """Run a pipeline command, print its report, exit with its status (a progress bar for many days).

    The whole configuration and the arguments are checked first (exit 2, nothing touched). SIGINT and
    SIGTERM stop the run through its :class:`StopSignal` (see :mod:`company_activity.interrupts`).
    """
    with errors():
        settings = ctx.obj.settings()
        check_settings(settings, needs_api=needs_api)
        if check is not None:
            check(settings)
        setup_logging(settings)
        stop = StopSignal(deadline_seconds=settings.run_deadline)
        try:
            with (
                handle_signals(stop),
                Pipeline(settings, stop=stop) as pipeline,
                RunProgress(progress_days, label=label) as progress,
            ):
                report = action(pipeline, progress if progress.enabled else None)
        except KeyboardInterrupt:  # a second signal: stopped at once, the open transaction rolled back
            code = EXIT_CODES.get(stop.reason, EXIT_CODES["SIGINT"])
            click.echo(
                f"error: stopped at once ({stop.reason or 'SIGINT'}); the next run catches up", err=True
            )
            exit_now_if_stuck(code)
            sys.exit(code)
        print_report(report)
    if report.stopped:
        exit_now_if_stuck(report.exit_code)
    sys.exit(report.exit_code)


# -- issue 10: --dry-run (run, backfill, build): print the plan, touch nothing ----------------------------
_DRY_RUN = click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (days, steps, catch-up, lost days, rebuilds) and touch nothing.",
)


def _dry_run(
    ctx: click.Context,
    make: Callable[[Planner], RunPlan],
    *,
    needs_api: bool = True,
    check: Check | None = None,
) -> None:
    """Plan a command from the run state read read-only (none when nothing ran yet), print it, exit 0.

    No run is recorded and no file or folder is created (the warehouse is opened read-only, or not at all).
    """
    with errors():
        settings = ctx.obj.settings()
        check_settings(settings, needs_api=needs_api)
        if check is not None:
            check(settings)
        setup_logging(settings)
        the_plan, stale = plan_read_only(settings, make)
    rebuilds = ", ".join(f"{a.isoformat()}..{b.isoformat()}" for a, b in segments(stale)) or "none"
    for line in the_plan.describe():
        echo(line)
    echo(f"rebuilds of stale or failed days: {rebuilds} (plus the days whose inputs this run changes)")
    echo("dry run: nothing was run, recorded or created")
    sys.exit(0)


# -- end issue 10 block ---------------------------------------------------------------------------------


def _ordered(start: date, end: date) -> None:
    if end < start:
        raise ConfigError(f"--end {end.isoformat()} is before --date {start.isoformat()}")


def _required(value: str, option: str) -> date:
    day = parse_date(value, option)
    assert day is not None
    return day


@main.command()
@click.option(
    "--date",
    "day",
    metavar="YYYY-MM-DD",
    default=None,
    help="Run the master pipeline for this one day (plus the rebuilds it triggers).",
)
@_DRY_RUN
@click.pass_context
def run(ctx: click.Context, day: str | None, dry_run: bool) -> None:
    """Run the master pipeline: yesterday (UTC), after catching up missed days.

    Without --date it first catches up every earlier day whose usage is not complete (within the
    API's retention, not before the start date), oldest first.

    \b
    Example:
        company-activity run
        company-activity run --date 2026-11-20
    """
    with errors():
        the_day = parse_date(day, "--date")
    if dry_run:
        _dry_run(ctx, lambda p: p.run(day=the_day), check=lambda s: check_closed_day(s, the_day, "--date"))
    _execute(
        ctx,
        lambda pipeline, progress: pipeline.run(day=the_day, progress=progress),
        check=lambda s: check_closed_day(s, the_day, "--date"),
    )


@main.command()
@click.option("--start", required=True, metavar="YYYY-MM-DD", help="First day.")
@click.option("--end", required=True, metavar="YYYY-MM-DD", help="Last day (inclusive).")
@_DRY_RUN
@click.pass_context
def backfill(ctx: click.Context, start: str, end: str, dry_run: bool) -> None:
    """Run the master pipeline for every day of a range, oldest first, with progress shown.

    \b
    Example:
        company-activity backfill --start 2026-11-01 --end 2026-11-14
    """
    with errors():
        s, e = _required(start, "--start"), _required(end, "--end")
    if dry_run:
        _dry_run(
            ctx, lambda p: p.backfill(s, e), check=lambda settings: check_range(settings, s, e, "--start")
        )
    _execute(
        ctx,
        lambda pipeline, progress: pipeline.backfill(s, e, progress=progress),
        progress_days=(e - s).days + 1,
        check=lambda settings: check_range(settings, s, e, "--start"),
    )


@main.command()
@click.option("--date", "day", required=True, metavar="YYYY-MM-DD", help="The day to re-run.")
@click.option(
    "--from-step",
    type=click.Choice(["ingest_crm", "ingest_usage", "build"]),
    default=None,
    help="Start at this step; the steps before it are not repeated. "
    "Default: the first step of the day that did not succeed in its latest run.",
)
@click.pass_context
def rerun(ctx: click.Context, day: str, from_step: str | None) -> None:
    """Re-run one day from a failed step (the design's "rerun from failed activity").

    \b
    Example:
        company-activity rerun --date 2026-11-20 --from-step build
        company-activity rerun --date 2026-11-20          # from the step that failed
    """
    with errors():
        the_day = _required(day, "--date")
    _execute(
        ctx,
        lambda pipeline, _progress: pipeline.rerun(the_day, from_step=from_step),
        needs_api=from_step != "build",
        check=lambda s: check_closed_day(s, the_day, "--date"),
    )


@main.command()
@click.option("--date", "day", required=True, metavar="YYYY-MM-DD", help="First (or only) day.")
@click.option("--end", default=None, metavar="YYYY-MM-DD", help="Last day (inclusive); default --date.")
@click.pass_context
def replay(ctx: click.Context, day: str, end: str | None) -> None:
    """Reload staging from the latest complete raw run, and rebuild, without calling the API.

    Each day is re-parsed from the raw pages its manifest lists (checksums verified).

    \b
    Example:
        company-activity replay --date 2026-11-20 --end 2026-11-25
    """
    with errors():
        s = _required(day, "--date")
        e = parse_date(end, "--end") or s
    _execute(
        ctx,
        lambda pipeline, progress: pipeline.replay(s, e, progress=progress),
        progress_days=(e - s).days + 1,
        label="replaying",
        needs_api=False,
        check=lambda _s: _ordered(s, e),
    )


@main.command()
@click.option("--start", required=True, metavar="YYYY-MM-DD", help="First day.")
@click.option("--end", required=True, metavar="YYYY-MM-DD", help="Last day (inclusive).")
@click.option("--full", is_flag=True, help="Rebuild every day, also those whose inputs did not change.")
@_DRY_RUN
@click.pass_context
def build(ctx: click.Context, start: str, end: str, full: bool, dry_run: bool) -> None:
    """Build analytics rows for a range from staging, without calling the API.

    Days already built whose inputs were not loaded since are skipped; --full rebuilds them too.

    \b
    Example:
        company-activity build --start 2026-11-01 --end 2026-11-14
    """
    with errors():
        s, e = _required(start, "--start"), _required(end, "--end")
    if dry_run:
        check = lambda settings: check_range(settings, s, e, "--start")  # noqa: E731
        _dry_run(ctx, lambda p: p.build(s, e, full=full), needs_api=False, check=check)
    _execute(
        ctx,
        lambda pipeline, progress: pipeline.build(s, e, full=full, progress=progress),
        needs_api=False,
        check=lambda settings: check_range(settings, s, e, "--start"),
    )


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the warehouse schema (or check it is current).

    \b
    Example:
        COMPANY_ACTIVITY_WAREHOUSE=./data/warehouse.duckdb company-activity init
    """
    with errors(), _pipeline(ctx) as pipeline:
        version = pipeline.wh.schema_version()
        applied = pipeline.schema_applied
        how = (
            "current"
            if not applied
            else "created"
            if applied[0] == 1
            else f"migrated from version {applied[0] - 1}"
        )
        click.echo(
            f"warehouse {pipeline.wh.location} ({pipeline.wh.dialect}) is ready "
            f"(schema version {version}: {how})"
        )


@main.command()
@click.option(
    "--dir",
    "folder",
    default="./data/demo",
    show_default=True,
    help="Folder for the demo's DuckDB file and lake.",
)
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 30), help="Days to run.")
@click.option(
    "--companies",
    default=200,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Companies the simulator invents.",
)
@click.option("--seed", default=7, show_default=True, help="Seed of the synthetic data.")
@click.pass_context
def demo(ctx: click.Context, folder: str, days: int, companies: int, seed: int) -> None:
    """Run the whole pipeline on embedded defaults, with no set-up.

    Starts the built-in API simulator on a free loopback port, writes sample CRM snapshots into a local
    lake, runs the last 14 days into a DuckDB file (or a configured spark:ROOT), and prints what it built
    and where.

    \b
    Example:
        company-activity demo --companies 500
    """
    from .demo import run_demo

    with errors():
        code = run_demo(
            ctx.obj.settings(), folder=folder, days=days, companies=companies, seed=seed, echo=click.echo
        )
    sys.exit(code)


main.add_command(simulate_api)
main.add_command(status)
main.add_command(runs)

from .scheduler import schedule  # noqa: E402 - registered last (scheduler.py does not import the CLI)

main.add_command(schedule)

from .health import health  # noqa: E402 - issue 14: the container image's HEALTHCHECK

main.add_command(health)
# issue 12: the web UI and the HTML report (company_activity.web; need the 'ui' extra)
from .web.cli import report, serve  # noqa: E402

main.add_command(serve)
main.add_command(report)
