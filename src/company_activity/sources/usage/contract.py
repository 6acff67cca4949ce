"""The product-usage API's data contract: one page's envelope and records (``product-usage-api.md``).

:func:`parse_usage_page` validates one ``200`` body; :func:`decode_json` decodes a body the way every part
of the project does. Beyond the spec's types, a record must be something both warehouses can store, so that
DuckDB and PostgreSQL reach the same verdict before anything is loaded:

* ``active_users`` and ``events`` are 64-bit: an integer in ``0 .. 2**63 - 1`` (:data:`COUNT_MAX`). A JSON
  number that is not an integer (``1.5``, ``1e400``), a boolean, or an integer out of that range is a
  :class:`~company_activity.errors.UsageDataError` naming the field and the company, never retried.
  (orjson refuses numbers beyond a double or a 64-bit integer; such a body is decoded again by the
  standard library, so that the field is named instead of the body being taken for a truncated one.)
* ``company_id`` is a non-empty string of at most :data:`COMPANY_ID_MAX` characters, without NUL (which
  PostgreSQL cannot store) and encodable as UTF-8 (no lone surrogate).

Messages quote input data only as a short escaped excerpt (JSON-escaped, cut to about 40 characters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any, NoReturn

import orjson

from ...errors import UsageDataError

__all__ = [
    "COMPANY_ID_MAX",
    "COUNT_MAX",
    "INVALID",
    "Page",
    "ParsedPage",
    "check_envelope",
    "decode_json",
    "excerpt",
    "parse_usage_doc",
    "parse_usage_page",
]

#: the largest count a record may carry: the warehouse columns are BIGINT (the spec says "int")
COUNT_MAX = 2**63 - 1
#: the longest ``company_id`` accepted (characters); a longer one fails the day, on every engine alike
COMPANY_ID_MAX = 256
#: characters of input data quoted in a message
EXCERPT_CHARS = 40


@dataclass(frozen=True)
class Page:
    """One ``200`` page of a day, as received."""

    number: int  # 1-based
    cursor: str | None  # the cursor sent for this page (None for the first)
    body: bytes  # the raw 200 response body, exactly as received
    record_count: int
    next_cursor: str | None
    params: dict[str, str]  # query parameters sent
    fetched_at: datetime  # UTC aware
    #: the body decoded (a JSON object whose envelope was checked), so that it is not decoded twice
    doc: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ParsedPage:
    """The validated content of one page, column by column (index ``i`` of each list is record ``i``)."""

    company_ids: list[str]
    active_users: list[int]
    events: list[int]
    extra_fields: frozenset[str]  # record fields beyond the contract (schema drift)
    next_cursor: str | None
    #: for each extra field, the index of the first record that carries it
    first_extra: dict[str, int] = field(default_factory=dict)

    @property
    def records(self) -> list[tuple[str, int, int]]:
        """``(company_id, active_users, events)`` in page order."""
        return list(zip(self.company_ids, self.active_users, self.events, strict=True))

    def __len__(self) -> int:
        return len(self.company_ids)


# -- decoding ---------------------------------------------------------------------------------------------
class _Number(str):
    """A JSON number orjson could not hold (``1e400``, ``1.5``, a 30-digit integer), kept as its text."""

    __slots__ = ()


def _parse_int(text: str) -> Any:
    # within 64 bits (+ sign) an int; beyond, the text (int() of a huge string is slow, or refused)
    return int(text) if len(text) <= 20 else _Number(text)


def _constant(text: str) -> Any:
    return _Number(text)  # NaN, Infinity, -Infinity: not JSON, but name the field rather than the body


#: what :func:`decode_json` returns for a body that is not JSON at all (truncated, HTML, ...)
INVALID: Any = object()


def decode_json(body: bytes) -> Any:
    """The decoded JSON of ``body``, or :data:`INVALID` (no exception, so nothing chains the body along).

    orjson first; when it refuses, the standard library decodes again with every non-integer number kept
    as its text, so that a number out of range is reported against its field (terminal) and only a body
    that is not JSON is :data:`INVALID` (treated as truncated: transient).
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body, parse_float=_Number, parse_int=_parse_int, parse_constant=_constant)
    except (ValueError, RecursionError):
        return INVALID


# -- messages ---------------------------------------------------------------------------------------------
def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A value as escaped JSON, cut to about ``limit`` characters, for messages."""
    if isinstance(value, _Number):
        text = str(value)
    elif isinstance(value, str) and len(value) > 4 * limit:
        text = excerpt(value[: 2 * limit], limit)  # do not escape megabytes to show forty characters
    else:
        try:
            text = orjson.dumps(value).decode()
        except (TypeError, orjson.JSONEncodeError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, _Number):
        return "number"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


# -- the envelope -----------------------------------------------------------------------------------------
_MISSING: Any = object()


def check_envelope(doc: Any, day: date, source: str) -> tuple[list[Any], str | None]:
    """The ``data`` list and ``next_cursor`` of a decoded page, or UsageDataError."""
    if type(doc) is not dict:
        raise UsageDataError(f"{source}: the body is not a JSON object (got {_kind(doc)})")
    expected = day.isoformat()
    got = doc.get("date", _MISSING)
    if got is _MISSING:
        raise UsageDataError(f"{source}: field 'date' is missing (expected {expected!r})")
    if got != expected:
        raise UsageDataError(f"{source}: field 'date' is {excerpt(got)}, expected {expected!r}")
    data = doc.get("data", _MISSING)
    if data is _MISSING:
        raise UsageDataError(f"{source}: field 'data' is missing")
    if type(data) is not list:
        raise UsageDataError(f"{source}: field 'data' must be an array, got {_kind(data)} {excerpt(data)}")
    if "next_cursor" not in doc:
        raise UsageDataError(f"{source}: field 'next_cursor' is missing")
    next_cursor = doc["next_cursor"]
    if next_cursor is not None and type(next_cursor) is not str:
        raise UsageDataError(
            f"{source}: field 'next_cursor' must be a string or null, got {_kind(next_cursor)} "
            f"{excerpt(next_cursor)}"
        )
    return data, next_cursor


# -- records ----------------------------------------------------------------------------------------------
_FIELDS = ("company_id", "active_users", "events")
_FIELD_SET = frozenset(_FIELDS)


def _company_id_problem(cid: Any) -> str | None:
    """Why ``cid`` cannot be a company id (None: it can)."""
    if type(cid) is not str or not cid.strip():
        return f"must be a non-empty string, got {_kind(cid)} {excerpt(cid)}"
    if len(cid) > COMPANY_ID_MAX:
        return f"is {len(cid)} characters long, more than the {COMPANY_ID_MAX} a company id may have"
    if "\x00" in cid:
        return "contains a NUL character, which a warehouse cannot store"
    if not cid.isascii():
        try:
            cid.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (a lone surrogate), which a warehouse cannot store"
    return None


def _count_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a count (None: it can)."""
    if type(value) is not int or value < 0:
        return f"must be an integer >= 0, got {_kind(value)} {excerpt(value)}"
    if value > COUNT_MAX:
        return f"is {excerpt(value)}, more than a 64-bit count holds ({COUNT_MAX})"
    return None


def _record_error(source: str, index: int, record: Any) -> UsageDataError | None:
    """Describe precisely why ``record`` breaks the contract (None: it does not)."""
    if type(record) is not dict:
        return UsageDataError(
            f"{source}: record {index} must be a JSON object, got {_kind(record)} {excerpt(record)}"
        )
    cid = record.get("company_id")
    where = f"record {index}"
    if type(cid) is str and cid.strip():
        where += f" (company_id {excerpt(cid)})"
    missing = [f for f in _FIELDS if f not in record]
    if missing:
        names = ", ".join(repr(f) for f in missing)
        return UsageDataError(f"{source}: {where}: missing field{'s' if len(missing) > 1 else ''} {names}")
    problem = _company_id_problem(cid)
    if problem is not None:
        return UsageDataError(f"{source}: {where}: field 'company_id' {problem}")
    for name in ("active_users", "events"):
        problem = _count_problem(record[name])
        if problem is not None:
            return UsageDataError(f"{source}: {where}: field {name!r} {problem}")
    return None


_get_company_id = itemgetter("company_id")
_get_active_users = itemgetter("active_users")
_get_events = itemgetter("events")


def parse_usage_page(body: bytes, *, day: date, source: str) -> ParsedPage:
    """Validate one ``200`` body of ``GET /v1/usage/daily`` for ``day`` against the contract.

    Returns the records column by column in page order (repeats are kept: the caller judges duplicates
    across the whole day) and the record fields beyond the contract. Any violation raises
    :class:`UsageDataError` naming ``source``, the record index, the company, the field and the value.
    """
    doc = decode_json(body)
    if doc is INVALID:
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UsageDataError(f"{source}: the body is not valid JSON ({exc})") from None
    return parse_usage_doc(doc, day=day, source=source)


def parse_usage_doc(doc: Any, *, day: date, source: str) -> ParsedPage:
    """:func:`parse_usage_page` of a body already decoded (``Page.doc`` or :func:`decode_json`).

    The common case costs no Python bytecode per record: the columns are gathered and checked with
    C-level ``map``/``set``/``min``/``max`` passes. Only when a check fails does a record-by-record pass
    run, to name the first offending record precisely.
    """
    data, next_cursor = check_envelope(doc, day, source)
    try:
        if not set(map(type, data)) <= {dict}:
            raise TypeError
        company_ids: list[Any] = list(map(_get_company_id, data))
        users: list[Any] = list(map(_get_active_users, data))
        events: list[Any] = list(map(_get_events, data))
    except (KeyError, TypeError):
        _raise_first_bad_record(data, source)
    if data and not (
        set(map(type, company_ids)) == {str}
        and set(map(type, users)) == {int}
        and set(map(type, events)) == {int}
        and min(users) >= 0
        and min(events) >= 0
        and max(users) <= COUNT_MAX
        and max(events) <= COUNT_MAX
        and max(map(len, company_ids)) <= COMPANY_ID_MAX
        and all(map(str.strip, company_ids))  # non-empty and not only whitespace
        and _storable("".join(company_ids))
    ):
        _raise_first_bad_record(data, source)
    extra: frozenset[str] = frozenset()
    first_extra: dict[str, int] = {}
    if data and set(map(len, data)) != {3}:
        extra = frozenset(set().union(*data) - _FIELD_SET)
        for index, rec in enumerate(data):
            if len(rec) != 3:
                for name in rec.keys() - _FIELD_SET:
                    first_extra.setdefault(name, index)
                if len(first_extra) == len(extra):
                    break
    return ParsedPage(company_ids, users, events, extra, next_cursor, first_extra)


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raise_first_bad_record(data: list[Any], source: str) -> NoReturn:
    """Raise the precise UsageDataError of the first record of ``data`` that breaks the contract."""
    for index, rec in enumerate(data):
        error = _record_error(source, index, rec)
        if error is not None:
            raise error
    raise UsageDataError(f"{source}: invalid records")  # pragma: no cover - the fast checks agree
