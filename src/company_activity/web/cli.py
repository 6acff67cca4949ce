"""The ``serve`` and ``report`` commands (registered on the main CLI; they need the ``ui`` extra)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..exits import exit_cannot_listen


def _need_ui_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
        import plotly  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the web UI needs the 'ui' extra ({exc.name} is missing): pip install 'company-activity[ui]'"
        ) from None


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to serve on: a port in use fails here (OSError), before
    anything is opened or printed, and not as uvicorn's own log line and exit status."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until uvicorn serves: the banner is true at once
    except OSError:
        sock.close()
        raise
    return sock


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the read-only web UI: activity, churn risk, runs and days, and a JSON API under /api/.

    \b
    Loopback only, unless COMPANY_ACTIVITY_UI_TOKEN is set (then every page and API call needs it):
        company-activity serve                       # http://127.0.0.1:8080/
        COMPANY_ACTIVITY_UI_TOKEN=… company-activity serve --host 0.0.0.0
    """
    try:
        _need_ui_extra()
        from .app import allowed_hosts, is_loopback

        settings = ctx.obj.settings()
        if settings.ui_token is None and not is_loopback(host):
            raise ConfigError(
                f"--host {host} is not a loopback address: set COMPANY_ACTIVITY_UI_TOKEN to serve other "
                "machines (every page and API call then needs the token)"
            )
        hosts = allowed_hosts(settings)
    except ConfigError as exc:
        _fail(exc)
    try:  # the address first: a port in use is one line and exit 2, like any other bad option
        sock = _listening_socket(host, port)
    except OSError as exc:
        exit_cannot_listen(host, port, exc, what="serve")
    port = int(sock.getsockname()[1])  # the port taken (with --port 0: the one the system gave)
    import uvicorn

    from ..logs import configure_from_settings
    from .app import create_app

    settings, note = _demo_fallback(settings)
    configure_from_settings(settings)
    app = create_app(settings)
    if note:
        click.echo(note)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"company-activity UI on http://{shown}:{port}/ (warehouse {_where(settings.warehouse)})")
    if settings.ui_token is not None:
        click.echo(f"it answers to the Host names {', '.join(hosts)} (COMPANY_ACTIVITY_UI_HOSTS adds others)")
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


@click.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option("--start", default=None, metavar="YYYY-MM-DD", help="First day (default: 90 days before end).")
@click.option("--end", default=None, metavar="YYYY-MM-DD", help="Last day (default: the latest built day).")
@click.pass_context
def report(ctx: click.Context, out: str, start: str | None, end: str | None) -> None:
    """Write the overview, churn list and pipeline-health calendar as one self-contained HTML file."""
    from .db import WarehouseUnavailable
    from .queries import BadRequest, parse_day

    try:
        _need_ui_extra()
        from .report import write_report

        settings, note = _demo_fallback(ctx.obj.settings())
        if note:
            click.echo(note)
        first, last = parse_day(start, "--start"), parse_day(end, "--end")
        folder = Path(out).parent
        missing = not folder.exists()
        path = write_report(settings, out, start=first, end=last)
    except (ConfigError, BadRequest) as exc:
        _fail(exc)
    except WarehouseUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # a folder of the path is a file, no permission, disk full
        _fail(ConfigError(f"--out {out}: cannot write it ({exc.strerror or type(exc).__name__})"))
    if missing:
        click.echo(f"created the folder {folder} (it did not exist)")
    click.echo(f"wrote {path} ({path.stat().st_size // 1024} KiB; opens offline)")


#: where `company-activity demo` puts its warehouse and lake by default
DEMO_DIR = os.path.join(".", "data", "demo")


def _demo_fallback(settings: Any) -> tuple[Any, str | None]:
    """With no warehouse configured and none at the default path, serve the demo's (after `make demo`)."""
    from ..config import Settings

    fields = Settings.model_fields
    demo = os.path.join(DEMO_DIR, "warehouse.duckdb")
    if (
        settings.warehouse == fields["warehouse"].default
        and settings.lake == fields["lake"].default
        and not os.path.exists(settings.warehouse)
        and os.path.exists(demo)
    ):
        lake = os.path.join(DEMO_DIR, "lake")
        note = (
            f"no warehouse at {settings.warehouse}: showing the demo's, {demo} "
            "(set COMPANY_ACTIVITY_WAREHOUSE for another)"
        )
        return settings.model_copy(update={"warehouse": demo, "lake": lake}), note
    return settings, None


def _where(url: str) -> str:
    if url.startswith(("postgres://", "postgresql://")):
        from ..warehouse.postgres import redact

        return redact(url)
    return url
