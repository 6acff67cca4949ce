"""``company-activity health``: is a scheduler serving this warehouse? (a container's HEALTHCHECK).

A scheduler holds its scheduler lock for its whole life (see :mod:`company_activity.scheduler`): an
exclusive ``flock`` on ``<warehouse file>.scheduler.lock`` for DuckDB, a session advisory lock for
PostgreSQL. The check tries to take that lock without waiting: when it cannot, a scheduler holds it and
the answer is healthy (exit 0); when it can, no scheduler serves the warehouse (it released the lock
at once) and the answer is unhealthy (exit 1). It does not open the warehouse itself, so it never waits
for a run in progress. Exit 2: bad configuration.
"""

from __future__ import annotations

import sys

import click

from .errors import ConfigError, PipelineError


@click.command()
@click.pass_context
def health(ctx: click.Context) -> None:
    """Exit 0 when a scheduler serves the warehouse (holds its lock), 1 when none does.

    \b
    For a container's health check, next to `company-activity schedule`:
        HEALTHCHECK CMD ["company-activity", "health"]
    """
    from .warehouse.locks import SchedulerBusyError, scheduler_lock

    try:
        settings = ctx.obj.settings()
        with scheduler_lock(settings.run_state) as what:  # issue 13
            pass
    except SchedulerBusyError as exc:
        detail = str(exc).split("(", 1)[-1].split(";", 1)[0].split(")", 1)[0]
        click.echo(f"healthy: a scheduler serves the warehouse ({detail})")
        sys.exit(0)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except PipelineError as exc:
        click.echo(f"unhealthy: {exc}", err=True)
        sys.exit(1)
    click.echo(f"unhealthy: no scheduler holds the lock ({what})", err=True)
    sys.exit(1)
