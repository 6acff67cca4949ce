"""The one exit-code map of every command: 0 ok, 1 failed, 2 usage/config error, 128 + N for a stop by
signal N (130 SIGINT, 143 SIGTERM).

:func:`exit_on_errors` maps the exception tree (:mod:`company_activity.errors`) to those codes for a click
command: ``ConfigError`` -> 2, any other ``PipelineError`` -> 1, an expected ``OSError`` -> 1 with one
line naming the path and the cause. Used by ``cli.py`` and by commands defined beside their service
(``schedule``), so no command module imports the CLI.

:func:`exit_cannot_listen`: a server command (``serve``, ``simulate-api``) whose address cannot be had (a
port in use, a privileged port, an address not of this machine) prints one line naming ``HOST:PORT`` and
what to change, and exits 2, like any other bad argument.
"""

from __future__ import annotations

import errno
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

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


def listen_failure(host: str, port: int, exc: OSError, *, what: str) -> str:
    """Why a server cannot listen on ``host:port``, in one line that says what to change.

    ``what`` names the command that usually holds such a port (``serve``, ``simulate-api``).
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{shown} is already in use (another {what}?); pick another with --port"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {shown}: permission denied (a port below 1024?); pick another with --port"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"cannot listen on {shown}: {host} is not an address of this machine; pick another with --host"
    return f"cannot listen on {shown}: {exc.strerror or exc}"


def exit_cannot_listen(host: str, port: int, exc: OSError, *, what: str) -> NoReturn:
    """Print :func:`listen_failure` as one ``error:`` line and exit 2 (a bad ``--host``/``--port``)."""
    click.echo(redact(f"error: {listen_failure(host, port, exc, what=what)}"), err=True)
    sys.exit(EXIT_USAGE)
