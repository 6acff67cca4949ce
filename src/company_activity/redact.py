"""The one redaction of company-activity: every text that leaves the process passes through :func:`redact`.

That is the stdout report, the ``ops.*`` rows (step messages, last errors, check details, run summaries),
alert payloads (Teams, e-mail, log), log lines and the text of exceptions the CLI prints.

* Known secrets: every value registered with :func:`register_secret` (the settings' secrets, see
  :func:`secrets_from_settings`: API client secret and key, SMTP URL and password, the Teams webhook URL as a
  whole and its path and query on their own, the warehouse URL's password, the Azure connection string and
  its key / SAS parts), in plain and percent-encoded form.
* Generic patterns: ``password=…``, ``Bearer …``, ``user:pass@`` in URLs, webhook URLs of known hosts, JSON
  ``"token": "…"``, ``x-api-key: …``, SAS ``sig=…``.

:func:`excerpt` is how a message quotes input data: a short escaped (repr-like) excerpt, redacted.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlsplit

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["excerpt", "redact", "register_secret", "secrets_from_settings"]

_KEYS = (
    r"client_secret|access_token|refresh_token|id_token|api_key|apikey|password|passwd|pwd|secret|token"
    r"|accountkey|sharedaccesskey|sharedaccesssignature|sig|signature"
)
_REDACT: list[tuple[re.Pattern[str], str]] = [
    # Teams / Power Automate / Slack webhook URLs: the path and query are the credential
    (
        re.compile(
            r"(?i)(https?://[^\s/\"'<>]*(?:webhook\.office\.com|logic\.azure\.com|\.powerplatform\.com|"
            r"\.powerautomate\.com|hooks\.slack\.com)(?::\d+)?)/[^\s\"'<>]*"
        ),
        r"\1/***",
    ),
    # user:password@ in any URL (smtp://, postgresql://, https://, …)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\"']+:)[^@\s\"']+@"), r"\1***@"),
    # key=value (query strings, connection strings, form bodies)
    (re.compile(rf"(?i)\b({_KEYS})=([^&\s;,\"']+)"), r"\1=***"),
    # "key": "value" and 'key': 'value' (JSON bodies, dict reprs)
    (re.compile(rf"(?i)([\"'](?:{_KEYS}|authorization)[\"']\s*:\s*[\"'])[^\"']*"), r"\1***"),
    # Authorization headers
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?basic\s+)[A-Za-z0-9+/=]+"), r"\1***"),
    (re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"), r"\1***"),
]

_SECRET_PARAM = re.compile(rf"(?i){_KEYS}|code|key")  # query parameters that carry a credential
_MIN_SECRET = 4  # shorter values would blank out ordinary text
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secrets_sorted: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Redact ``value`` (and its percent-encoded form, and a URL's credentials) from every log line."""
    if not value:
        return
    candidates = {value, quote(value, safe=""), quote(value)}
    if "://" in value:
        parts = urlsplit(value)
        if parts.password:
            candidates |= {parts.password, unquote(parts.password)}
        for key, val in parse_qsl(parts.query):
            if _SECRET_PARAM.fullmatch(key):
                candidates |= {val, quote(val, safe="")}
    global _secrets_sorted
    with _secrets_lock:
        _secrets.update(c for c in candidates if len(c) >= _MIN_SECRET)
        _secrets_sorted = tuple(sorted(_secrets, key=len, reverse=True))


def secrets_from_settings(settings: Settings) -> list[str]:
    """The secret values of ``settings`` (webhook URL, SMTP URL and password, API secret and key, …)."""
    values: list[str] = []
    webhook = settings.teams_webhook_url
    if webhook is not None:  # secret as a whole: path and query too, whatever a receiver echoes
        values.extend(url_secret_parts(webhook.get_secret_value()))
    if "://" in settings.warehouse:  # a connection string: its password
        password = urlsplit(settings.warehouse).password
        if password:
            values.extend({password, unquote(password)})
    for name in (
        "smtp_url",
        "api_client_secret",
        "api_key",
        "azure_storage_connection_string",
        "lake_sas_token",
        "lake_account_key",
        "ui_token",
    ):
        secret = getattr(settings, name, None)
        if secret is not None:
            values.append(secret.get_secret_value())
    conn = settings.azure_storage_connection_string
    if conn is not None:  # its AccountKey / SharedAccessSignature parts on their own
        for part in conn.get_secret_value().split(";"):
            key, _, val = part.partition("=")
            if key.strip().lower() in ("accountkey", "sharedaccesssignature") and val:
                values.append(val.strip())
    return values


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential, or is a registered secret, replaced by ``***``."""
    for secret in _secrets_sorted:
        if secret in text:
            text = text.replace(secret, "***")
    for pattern, repl in _REDACT:
        text = pattern.sub(repl, text)
    return text


def url_secret_parts(url: str) -> list[str]:
    """A URL that is a credential as a whole (a webhook): the URL, its path + query, path, and query."""
    parts = urlsplit(url)
    pieces = [url]
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    for piece in (tail, parts.path, parts.query, tail.lstrip("/"), parts.path.lstrip("/")):
        if len(piece) >= 8:  # "/" or "/api" alone would blank out ordinary text
            pieces.append(piece)
    return pieces


def excerpt(value: object, limit: int = 40) -> str:
    """A short, escaped, redacted excerpt of input data for a message: ``repr``-like, cut to ``limit``."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)
    cut = text[:limit]
    shown = repr(redact(cut))
    return shown + ("…" if len(text) > limit else "")
