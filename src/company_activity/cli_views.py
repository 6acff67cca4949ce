"""The read-only commands: ``status`` and ``runs`` (``runs show``). They never create or migrate anything."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import click

from .cli_support import echo, errors, parse_date, reader
from .status_view import render_calendar, render_json

__all__ = ["runs", "status"]


@click.command()
@click.option(
    "--days",
    default=14,
    show_default=True,
    type=click.IntRange(1, 3660),
    help="How many days back from today.",
)
@click.option("--day", "one_day", default=None, metavar="YYYY-MM-DD", help="Everything about one day.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def status(ctx: click.Context, days: int, one_day: str | None, as_json: bool) -> None:
    """Per day: CRM, usage and build status, row counts, quality results, last error, last run.

    Reads only: it never creates or migrates a warehouse.

    \b
    Examples:
        company-activity status --days 7
        company-activity status --day 2026-11-21
    """
    from .state.read_model import RunStateReader, from_warehouse
    from .status_view import day_json, detail_dict, render_day

    with errors():
        day = parse_date(one_day, "--day")
        with reader(ctx) as wh:
            state = RunStateReader(from_warehouse(wh))
            settings = ctx.obj.settings()
            today = settings.today or datetime.now(UTC).date()
            if day is not None:
                detail = detail_dict(state.day(day))
            else:
                rows = [d.as_row() for d in reversed(state.days(today - timedelta(days=days), today))]
                latest = state.latest_run()
                recorded = state.count_runs() if not rows else len(rows)
                newest = state.latest_step_day() if not rows else None
    if day is not None:
        click.echo(day_json(detail) if as_json else render_day(detail), nl=as_json)
        return
    if as_json:
        click.echo(render_json(rows))
        return
    if not rows:
        if not recorded:
            click.echo("no runs recorded yet")
        else:
            hint = f"; the newest day any run touched is {newest.isoformat()}" if newest else ""
            click.echo(f"no runs touched the last {days} day(s) ({recorded} run(s) recorded{hint})")
        return
    width = shutil.get_terminal_size((100, 24)).columns
    click.echo(render_calendar(rows, width=width, start=today - timedelta(days=days), end=today), nl=False)
    if latest is not None and latest.status != "succeeded":
        echo(
            f"latest run {latest.run_id} ({latest.command}): {latest.status.upper()}"
            + (f" — {latest.message}" if latest.message else "")
        )


@click.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000), help="How many runs.")
@click.option(
    "--status",
    "status_filter",
    type=click.Choice(["running", "succeeded", "failed", "interrupted"]),
    default=None,
    help="Only runs that ended so.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def runs(ctx: click.Context, limit: int, status_filter: str | None, as_json: bool) -> None:
    """The run history, newest first (reads only; creates nothing).

    \b
    Examples:
        company-activity runs --limit 5
        company-activity runs --status failed --json
        company-activity runs show 20261128T202143Z-5bebc4
    """
    if ctx.invoked_subcommand is not None:
        ctx.meta["runs_json"] = as_json
        return
    from rich.console import Console

    from .runs_view import render_runs, to_json
    from .state.read_model import RunStateReader, from_warehouse

    with errors(), reader(ctx) as wh:
        state = RunStateReader(from_warehouse(wh))
        found = state.recent_runs(limit=limit, status=status_filter)
        total = state.count_runs() if not found else len(found)
    if as_json:
        click.echo(to_json(found))
        return
    if not found:
        click.echo(f"no {status_filter} runs among the {total} recorded" if total else "no runs recorded yet")
        return
    render_runs(Console(highlight=False), found)


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """One run: its steps per day with durations and rows, checks, and the commands to re-run what failed.

    RUN_ID may be the first characters of the id when they are unique.

    \b
    Example:
        company-activity runs show 20261128T202143Z
    """
    from rich.console import Console

    from .errors import ConfigError
    from .runs_view import render_run, to_json
    from .state.read_model import RunNotFound, RunStateReader, from_warehouse

    with errors(), reader(ctx) as wh:
        try:
            detail = RunStateReader(from_warehouse(wh)).run(run_id)
        except RunNotFound as exc:
            raise ConfigError(str(exc)) from None
    if as_json or ctx.meta.get("runs_json"):
        click.echo(to_json(detail))
        return
    render_run(Console(highlight=False), detail)
