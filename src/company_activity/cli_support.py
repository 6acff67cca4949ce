"""What every command of the CLI shares: the settings context, the error/exit map, dates, echo, readers."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

import click

from .config import Settings, load_settings
from .errors import ConfigError, WarehouseError
from .exits import exit_on_errors
from .logs import configure_from_settings
from .preflight import check_settings
from .redact import redact
from .warehouse import Warehouse, connect

if TYPE_CHECKING:
    from .pipeline import RunReport

__all__ = [
    "Context",
    "alert_counts",
    "demo_pointer",
    "echo",
    "errors",
    "parse_date",
    "print_report",
    "reader",
    "setup_logging",
]

errors = exit_on_errors  # the one exit-code map (exits.py)


class Context:
    """The CLI's global options, and the settings they lead to."""

    def __init__(self, config_file: str | None, log_level: str | None, log_format: str | None):
        self.config_file = config_file
        self.overrides: dict[str, Any] = {}
        if log_level:
            self.overrides["log_level"] = log_level
        if log_format:
            self.overrides["log_format"] = log_format

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(self.config_file, **(self.overrides | overrides))


def setup_logging(settings: Settings) -> None:
    configure_from_settings(settings)


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def echo(text: str) -> None:
    click.echo(redact(text))


@contextmanager
def reader(ctx: click.Context) -> Iterator[Warehouse]:
    """A read-only connection to the configured warehouse; creates nothing.

    With no warehouse there and no ``--config`` given, the error points at the demo's settings file when
    one is in the current folder (``make demo`` writes ``data/demo/company-activity.toml``).
    """
    settings = ctx.obj.settings()
    check_settings(settings, needs_api=False)  # the whole configuration, before anything is opened
    setup_logging(settings)
    try:
        wh = connect(settings.run_state, lock_timeout=settings.lock_timeout, read_only=True)
    except WarehouseError as exc:
        raise WarehouseError(f"{exc}{demo_pointer(ctx)}") from None
    try:
        if wh.schema_version() is None:
            raise WarehouseError(f"warehouse {wh.location} has no company-activity schema yet")
        yield wh
    finally:
        wh.close()


def demo_pointer(ctx: click.Context) -> str:
    """``; the demo's warehouse is configured in FILE: company-activity --config FILE status`` when the
    command ran without ``--config`` and the demo's settings file is in the current folder; else ``""``."""
    from .demo import CONFIG_NAME, DEFAULT_DIR

    config = os.path.relpath(os.path.join(DEFAULT_DIR, CONFIG_NAME))
    if ctx.find_root().obj.config_file is not None or not os.path.isfile(config):
        return ""
    names = []
    node: click.Context | None = ctx
    while node is not None and node.parent is not None:  # the sub-command's words, without the program's
        names.append(node.info_name or "")
        node = node.parent
    command = " ".join(shlex.quote(n) for n in reversed(names) if n)
    return (
        f"; the demo's warehouse is configured in {config}: "
        f"company-activity --config {shlex.quote(config)} {command}"
    )


def print_report(report: RunReport) -> None:
    """What a pipeline command prints when it ends: each step, then the outcome in one line."""
    echo(f"run {report.run_id}: {report.command}")
    for note in report.notes:
        echo(note)
    if report.caught_up:
        echo("caught up: " + ", ".join(d.isoformat() for d in report.caught_up))
    for step in report.steps:
        rows = f" rows={step.rows_loaded}" if step.rows_loaded is not None else ""
        rejected = f" rejected={step.rows_rejected}" if step.rows_rejected else ""
        msg = f"  {step.message}" if step.message else ""
        echo(f"  {step.day.isoformat()}  {step.step:<13} {step.status:<9}{rows}{rejected}{msg}")
    if report.pending:
        echo("pending (API not final yet): " + ", ".join(d.isoformat() for d in report.pending))
    if report.lost:
        echo("LOST (outside the API's retention): " + ", ".join(d.isoformat() for d in report.lost))
    if report.stopped:
        echo(
            f"INTERRUPTED ({report.stopped}): {len(report.built)} day(s) built; the day in progress was "
            "left for the next run, which picks up the rest"
        )
        return
    echo(f"{'FAILED' if report.failed else 'OK'}: {len(report.built)} day(s) built; {alert_counts(report)}")


def alert_counts(report: RunReport) -> str:
    """``alerts: 1 error, 2 warnings`` (``no alerts``): what the run alerted, errors and warnings apart."""
    errors = sum(1 for a in report.alerts if a.severity == "error")
    warnings = sum(1 for a in report.alerts if a.severity == "warning")
    if not errors and not warnings:
        return "no alerts"
    return f"alerts: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
