"""Logging set-up: text or JSON lines on stderr, with secrets redacted from every line.

* :func:`configure` installs one handler for the whole process (the root logger), so the lines of
  libraries (httpx, azure, …) are formatted and redacted too; ``company_activity.*`` logs at the
  configured level, other libraries at WARNING and above.
* :func:`log_context` sets the run id, day and step that every line logged inside it carries (context
  variables: nested contexts add to the outer one; a new thread starts with none unless its context is
  copied with :func:`contextvars.copy_context`). JSON lines always have ``run_id`` and ``day`` keys.
* :func:`redact` removes credentials by pattern (``password=``, ``Bearer …``, ``user:pass@`` in URLs, Teams
  webhook URLs, …) and every value registered with :func:`register_secret` (the settings' secrets and
  every part of a configured URL that can carry one, in each form an echoing peer may give it: see
  :func:`secrets_from_settings` and :mod:`company_activity.redact`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any

from .redact import redact as redact
from .redact import register_secret as register_secret
from .redact import secrets_from_settings as secrets_from_settings

if TYPE_CHECKING:
    from .config import Settings

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
