"""The one exit-code map of every command: 0 ok, 1 failed, 2 usage/config error, 128 + N for a stop by
signal N (130 SIGINT, 143 SIGTERM).

:func:`exit_on_errors` maps the exception tree (:mod:`company_activity.errors`) to those codes for a click
command: ``ConfigError`` -> 2, any other ``PipelineError`` -> 1, an expected ``OSError`` -> 1 with one
line naming the path and the cause. Used by ``cli.py`` and by commands defined beside their service
(``schedule``), so no command module imports the CLI.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from .errors import ConfigError, PipelineError
from .failures import as_storage_error
from .redact import redact

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: a run stopped by a signal exits 128 + its number
EXIT_CODES = {signal.Signals(s).name: 128 + int(s) for s in (signal.SIGINT, signal.SIGTERM)}


@contextmanager
def exit_on_errors() -> Iterator[None]:
    """Map the exception tree to exit codes: ConfigError -> 2, other pipeline errors -> 1."""
    try:
        yield
    except ConfigError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        sys.exit(EXIT_USAGE)
    except PipelineError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        sys.exit(EXIT_FAILED)
    except OSError as exc:  # an expected OS error: one line naming the path and the cause
        click.echo(f"error: {as_storage_error(exc)}", err=True)
        sys.exit(EXIT_FAILED)
