"""What a non-``200`` answer of the product-usage API means (the spec's error table)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import NoReturn

import httpx

from ...errors import ApiTransientError, DateNotAvailable, DateNotFinal, InvalidRequest
from ...redact import clip
from .contract import decode_json
from .retry import parse_retry_after

__all__ = ["describe", "error_code", "raise_for_status", "raise_transient_or_other"]

#: characters of an error body's ``error`` field a message quotes (a peer may echo anything in it)
CODE_CHARS = 64

#: statuses worth retrying (besides 429): the spec's 500/502/503/504, plus 408 and the rest of 5xx
#: except "not implemented" and "HTTP version not supported", which no retry can change.
_NOT_TRANSIENT_5XX = frozenset({501, 505})

Redact = Callable[[str], str]


def error_code(response: httpx.Response, redact: Redact) -> str | None:
    """The ``error`` field of an error body, or None: the peer's text, so redacted (the client's own
    secrets by ``redact``, then every registered one), cut, and redacted again (:func:`clip`)."""
    doc = decode_json(response.content)
    code = doc.get("error") if type(doc) is dict else None
    if type(code) is not str or not code:
        return None
    return redact(clip(redact(code), CODE_CHARS)) or None


def describe(response: httpx.Response, redact: Redact, code: str | None = None) -> str:
    code = code if code is not None else error_code(response, redact)
    return f"HTTP {response.status_code} {code}" if code else f"HTTP {response.status_code}"


def raise_for_status(response: httpx.Response, day: date, what: str, redact: Redact) -> NoReturn:
    """Raise what a non-200, non-401 answer to a data request means."""
    status = response.status_code
    code = error_code(response, redact)
    desc = describe(response, redact, code)
    if status == 404 and code == "date_not_available":
        raise DateNotAvailable(
            f"usage for {day} is not available: {desc} (older than the API's retention; "
            "that day's data is lost)",
            status=status,
            day=day,
        )
    if status == 409 and code == "date_not_final":
        raise DateNotFinal(
            f"usage for {day} is not final yet: {desc}; the day stays pending", status=status, day=day
        )
    raise_transient_or_other(response, day, what, desc)


def raise_transient_or_other(response: httpx.Response, day: date, what: str, desc: str) -> NoReturn:
    status = response.status_code
    if status in (408, 429) or (500 <= status <= 599 and status not in _NOT_TRANSIENT_5XX):
        raise ApiTransientError(
            f"{desc} for {day} {what}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status == 400:
        raise InvalidRequest(
            f"the product-usage API rejected the request for {day} ({what}): {desc}",
            status=status,
            day=day,
        )
    hint = " (check COMPANY_ACTIVITY_API_URL)" if status in (404, 405) or 300 <= status < 400 else ""
    raise InvalidRequest(
        f"unexpected answer from the product-usage API for {day} ({what}): {desc}{hint}",
        status=status,
        day=day,
    )
