"""The alert sinks the settings ask for: always the log, plus Teams and e-mail when configured."""

from __future__ import annotations

import ssl
from email.utils import parseaddr

import httpx

from ..config import Settings
from ..errors import ConfigError
from . import AlertSink, DeliveryPolicy, LogSink
from .email import EmailSink, parse_smtp_url
from .teams import TeamsSink


def sinks_from_settings(
    settings: Settings,
    *,
    http_client: httpx.Client | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[AlertSink]:
    """``[LogSink(), TeamsSink?, EmailSink?]`` from the settings.

    Raises ConfigError naming the setting when alerting is half-configured (e.g. recipients without an
    SMTP URL, or an SMTP URL without a sender): an alert that would silently go nowhere is a
    configuration error, not a run-time surprise.
    """
    policy = DeliveryPolicy.from_settings(settings)
    sinks: list[AlertSink] = [LogSink()]
    if settings.teams_webhook_url is not None:
        url = settings.teams_webhook_url.get_secret_value().strip()
        if url:
            if not url.startswith(("https://", "http://")):
                raise ConfigError("COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL: must start with https://")
            sinks.append(TeamsSink(url, policy=policy, client=http_client, ui_url=settings.ui_url))
    smtp_url = settings.smtp_url.get_secret_value().strip() if settings.smtp_url is not None else ""
    recipients = settings.alert_recipients
    if smtp_url:
        target = parse_smtp_url(smtp_url)
        sender = (settings.alert_email_from or "").strip()
        if not sender or "@" not in parseaddr(sender)[1]:
            raise ConfigError(
                "COMPANY_ACTIVITY_ALERT_EMAIL_FROM: an e-mail address is required when "
                "COMPANY_ACTIVITY_SMTP_URL is set"
            )
        if not recipients:
            raise ConfigError(
                "COMPANY_ACTIVITY_ALERT_EMAIL_TO: at least one recipient is required when "
                "COMPANY_ACTIVITY_SMTP_URL is set"
            )
        bad = [r for r in recipients if "@" not in parseaddr(r)[1]]
        if bad:
            raise ConfigError(f"COMPANY_ACTIVITY_ALERT_EMAIL_TO: not an e-mail address: {', '.join(bad)}")
        context = ssl_context
        if context is None and settings.smtp_ca_file:
            try:
                context = ssl.create_default_context(cafile=settings.smtp_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"COMPANY_ACTIVITY_SMTP_CA_FILE: cannot be read: {exc}") from None
        sinks.append(
            EmailSink(
                target,
                sender=sender,
                recipients=recipients,
                policy=policy,
                ssl_context=context,
                require_tls=not settings.allow_insecure_http,  # issue 14
                ui_url=settings.ui_url,
            )
        )
    elif recipients:
        raise ConfigError(
            "COMPANY_ACTIVITY_ALERT_EMAIL_TO is set but COMPANY_ACTIVITY_SMTP_URL is not: "
            "e-mail alerts need the SMTP server"
        )
    return sinks
