"""Logging set-up: text or JSON lines on stderr, with secrets redacted from every line.

* :func:`configure` installs one handler for the whole process (the root logger), so the lines of
  libraries (httpx, azure, …) are formatted and redacted too; ``company_activity.*`` logs at the
  configured level, other libraries at WARNING and above.
* :func:`log_context` sets the run id, day and step that every line logged inside it carries (context
  variables: nested contexts add to the outer one; a new thread starts with none unless its context is
  copied with :func:`contextvars.copy_context`). JSON lines always have ``run_id`` and ``day`` keys.
* :func:`redact` removes credentials by pattern (``password=``, ``Bearer …``, ``user:pass@`` in URLs, Teams
  webhook URLs, …) and every value registered with :func:`register_secret` (the settings' secrets, see
  :func:`secrets_from_settings`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

if TYPE_CHECKING:
    from .config import Settings

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
    for name in (
        "teams_webhook_url",
        "smtp_url",
        "api_client_secret",
        "api_key",
        "azure_storage_connection_string",
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


# -- run id and day on every line -------------------------------------------------------------------------
_CONTEXT_KEYS = ("run_id", "day", "step")
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "company_activity_log_context", default=MappingProxyType({})
)


@contextmanager
def log_context(
    *, run_id: str | None = None, day: date | str | None = None, step: str | None = None
) -> Iterator[None]:
    """Every line logged inside carries these values (``None`` keeps the outer context's value)."""
    new = dict(_context.get())
    for key, value in (("run_id", run_id), ("day", day), ("step", step)):
        if value is not None:
            new[key] = value.isoformat() if isinstance(value, date) else str(value)
    token = _context.set(new)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    """The run id, day and step set by the enclosing :func:`log_context` blocks."""
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Puts ``run_id``, ``day`` and ``step`` on each record (an explicit ``extra=`` value wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get()
        for key in _CONTEXT_KEYS:
            if getattr(record, key, None) is None:
                setattr(record, key, ctx.get(key))
        return True


class RedactingFilter(logging.Filter):
    """Redacts a record's message at the source, before any handler (even a test's) sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_URL_LOGGERS = ("httpx", "httpcore")
_url_filter = RedactingFilter()


def silence_url_logging() -> None:
    """Redact at the source what HTTP libraries log (httpx logs every request URL at INFO)."""
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if _url_filter not in logger.filters:
            logger.addFilter(_url_filter)


def _context_value(record: logging.LogRecord, key: str) -> str | None:
    """The record's own value (``extra=`` or set by ContextFilter), else the current log_context's."""
    value = getattr(record, key, None)
    if value is None:
        return _context.get().get(key)
    return value.isoformat() if isinstance(value, date) else str(value)


def _context_text(record: logging.LogRecord) -> str:
    parts = [f"{key}={value}" for key in _CONTEXT_KEYS if (value := _context_value(record, key)) is not None]
    return f" [{' '.join(parts)}]" if parts else ""


class RedactingTextFormatter(logging.Formatter):
    """``time level logger [run_id=… day=…]: message``, redacted (traceback included)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.context = _context_text(record)
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, run_id, day (always; null outside a run), step when
    set, message, exception when there is one. Everything redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "run_id": _context_value(record, "run_id"),
            "day": _context_value(record, "day"),
        }
        step = _context_value(record, "step")
        if step is not None:
            entry["step"] = step
        entry["message"] = redact(record.getMessage())
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


# kept for callers of the earlier private names
_RedactingText = RedactingTextFormatter
_Json = JsonFormatter


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (it may be swapped, e.g. by click's test runner)."""

    def __init__(self, stream: IO[str] | None = None):
        super().__init__(stream)
        self._fixed = stream

    @property
    def stream(self) -> IO[str]:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        self._fixed = value if value is not sys.stderr else None


def configure(
    *,
    level: str = "INFO",
    fmt: str = "text",
    secrets: Iterable[str | None] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Log ``company_activity.*`` at ``level`` (other libraries at WARNING+) as text or JSON lines.

    ``secrets`` are registered for redaction. Calling it again replaces the handler it installed before.
    Returns the handler.
    """
    for value in secrets:
        register_secret(value)
    silence_url_logging()
    handler = _StderrHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else RedactingTextFormatter())
    handler.addFilter(ContextFilter())
    handler._company_activity = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for logger in (root, logging.getLogger("company_activity")):
        for old in [h for h in logger.handlers if getattr(h, "_company_activity", False)]:
            logger.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    ours = logging.getLogger("company_activity")
    ours.setLevel(level)
    ours.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


def configure_from_settings(settings: Settings, *, stream: IO[str] | None = None) -> logging.Handler:
    """:func:`configure` with the settings' level, format and secrets."""
    return configure(
        level=settings.log_level,
        fmt=settings.log_format,
        secrets=secrets_from_settings(settings),
        stream=stream,
    )
