"""Configuration first: every command checks its whole configuration before it touches anything.

:func:`check_settings` runs before a warehouse is opened, a lake folder made, an alert sent or a run
recorded. A mistake raises :class:`~company_activity.errors.ConfigError` naming the setting (exit status 2).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from datetime import UTC, date, datetime

from .config import ENV_PREFIX, Settings
from .errors import ConfigError

__all__ = ["check_closed_day", "check_settings", "setting_origin"]


def check_settings(settings: Settings, *, needs_api: bool) -> None:
    """The whole configuration of a command; ``needs_api``: the command calls the product-usage API."""
    if settings.api_client_id and settings.api_client_secret is None:
        raise ConfigError(
            f"{ENV_PREFIX}API_CLIENT_SECRET is not set but {ENV_PREFIX}API_CLIENT_ID is: "
            "OAuth client credentials need both"
        )
    if settings.api_client_secret is not None and not settings.api_client_id:
        raise ConfigError(
            f"{ENV_PREFIX}API_CLIENT_ID is not set but {ENV_PREFIX}API_CLIENT_SECRET is: "
            "OAuth client credentials need both"
        )
    for name in ("warehouse", "lake"):
        if not str(getattr(settings, name)).strip():
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must not be empty")
    if needs_api:
        settings.require_api_url()
        if not settings.api_key and not (settings.api_client_id and settings.api_client_secret):
            raise ConfigError(
                f"no product-usage API credentials: set {ENV_PREFIX}API_CLIENT_ID and "
                f"{ENV_PREFIX}API_CLIENT_SECRET, or {ENV_PREFIX}API_KEY"
            )
    # alerting (webhook, SMTP URL, sender, recipients, CA file) and the schedule, whatever the command
    from .alerts.factory import sinks_from_settings
    from .scheduler import Cron

    sinks_from_settings(settings)
    Cron(settings.schedule_cron, source=f"{ENV_PREFIX}SCHEDULE_CRON")


def today(settings: Settings) -> date:
    return settings.today or datetime.now(UTC).date()


def check_closed_day(settings: Settings, day: date | None, what: str) -> None:
    """Refuse a day that is not over yet (today or later, UTC), before anything is opened."""
    if day is not None and day >= today(settings):
        raise ConfigError(
            f"{what} {day.isoformat()} is not a closed day yet (today is {today(settings).isoformat()})"
        )


def check_range(settings: Settings, start: date, end: date, start_option: str) -> None:
    if end < start:
        raise ConfigError(f"--end {end.isoformat()} is before {start_option} {start.isoformat()}")
    check_closed_day(settings, end, "--end")


def setting_origin(
    name: str,
    value: object,
    config_file: str | None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Where setting ``name`` with its effective ``value`` came from, for messages that name it:
    ``COMPANY_ACTIVITY_API_URL from the environment``, ``api_url in FILE``, or None (a default, or a value
    the program set itself, such as the demo's own API). A source counts only if it holds that value."""
    env = os.environ if environ is None else environ
    variable = ENV_PREFIX + name.upper()
    shown = str(value).rstrip("/")
    for key, text in env.items():
        if key.upper() == variable and text.strip() and text.strip().rstrip("/") == shown:
            return f"{variable} from the environment"
    if config_file is not None:
        try:
            with open(config_file, "rb") as fh:
                table = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError):
            return None
        for key, text in table.items():
            if key.lower() == name and str(text).strip().rstrip("/") == shown:
                return f"{name} in {config_file}"
    return None
