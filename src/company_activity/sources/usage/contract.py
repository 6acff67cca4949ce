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

Two kinds of violation (``docs/usage-api-policy.md``): the **spec's contract** (not an object, a missing
field, a wrong type, a negative count, an empty id) and the **project's own limits** (a count above
:data:`COUNT_MAX`, an id longer than :data:`COMPANY_ID_MAX`, only whitespace, holding NUL or a lone
surrogate). By default both raise; with ``quarantine=True`` a record that keeps the contract but breaks a
limit is returned in :attr:`ParsedPage.quarantined` (a :class:`Quarantined`) instead of in the columns,
and only a contract violation raises.

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
from ...redact import clip
from ...redact import excerpt as redacted_excerpt

__all__ = [
    "COMPANY_ID_MAX",
    "COUNT_MAX",
    "INVALID",
    "QUARANTINE_MAX_FRACTION",
    "Page",
    "ParsedPage",
    "Quarantined",
    "check_envelope",
    "decode_json",
    "excerpt",
    "parse_usage_doc",
    "parse_usage_page",
]

#: the largest count a record may carry: the warehouse columns are BIGINT (the spec says "int")
COUNT_MAX = 2**63 - 1
#: the longest ``company_id`` accepted (characters); a longer record is quarantined, on every engine alike
COMPANY_ID_MAX = 256
#: the largest share of a day's records that may be quarantined for the project's own limits while the
#: rest of the day is published (more: the day fails); the CRM file's 5% rule, for the API
QUARANTINE_MAX_FRACTION = 0.05
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
    #: the records kept out for the project's own limits (only with ``quarantine=True``), in page order
    quarantined: tuple[Quarantined, ...] = ()

    @property
    def records(self) -> list[tuple[str, int, int]]:
        """``(company_id, active_users, events)`` in page order."""
        return list(zip(self.company_ids, self.active_users, self.events, strict=True))

    def __len__(self) -> int:
        return len(self.company_ids)


@dataclass(frozen=True)
class Quarantined:
    """A record that keeps the spec's contract but breaks one of the project's own limits."""

    index: int  # 0-based, within its page (as in every message naming a record)
    field: str  # the field over the limit
    #: why, e.g. ``field 'company_id' is 300 characters long, more than the 256 a company id may have``
    reason: str
    where: str  # ``record 17 (company_id "C0000017xxx...")``, as in contract messages
    excerpt: str  # the company id, short, escaped and redacted (:func:`company_activity.redact.excerpt`)
    #: the company id when it is itself storable (a count over the limit): the one-record-per-company rule
    #: still holds for it; None when the id is what breaks the limit
    company_id: str | None
    counts: tuple[int, int]  # active_users, events as served


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
    return clip(text, limit)  # redacted before and after the cut (a peer may echo a secret)


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


def _where(index: int, cid: Any) -> str:
    where = f"record {index}"
    if type(cid) is str and cid.strip():
        where += f" (company_id {excerpt(cid)})"
    return where


def _contract_error(source: str, index: int, record: Any) -> UsageDataError | None:
    """Why ``record`` breaks the spec's own contract (None: it does not); never retried, never quarantined."""
    if type(record) is not dict:
        return UsageDataError(
            f"{source}: record {index} must be a JSON object, got {_kind(record)} {excerpt(record)}"
        )
    cid = record.get("company_id")
    where = _where(index, cid)
    missing = [f for f in _FIELDS if f not in record]
    if missing:
        names = ", ".join(repr(f) for f in missing)
        return UsageDataError(f"{source}: {where}: missing field{'s' if len(missing) > 1 else ''} {names}")
    if type(cid) is not str or not cid:
        got = f"{_kind(cid)} {excerpt(cid)}"
        return UsageDataError(f"{source}: {where}: field 'company_id' must be a non-empty string, got {got}")
    for name in ("active_users", "events"):
        value = record[name]
        if type(value) is not int or value < 0:
            got = f"{_kind(value)} {excerpt(value)}"
            return UsageDataError(f"{source}: {where}: field {name!r} must be an integer >= 0, got {got}")
    return None


def _company_id_limit(cid: str) -> str | None:
    """Why the id ``cid`` (a non-empty string) breaks one of the project's limits (None: it does not)."""
    if not cid.strip():
        return f"must be a non-empty string, not only whitespace, got {_kind(cid)} {excerpt(cid)}"
    if len(cid) > COMPANY_ID_MAX:
        return f"is {len(cid)} characters long, more than the {COMPANY_ID_MAX} a company id may have"
    if "\x00" in cid:
        return "contains a NUL character, which a warehouse cannot store"
    if not _storable(cid):
        return "is not valid Unicode (a lone surrogate), which a warehouse cannot store"
    return None


def _limit_problem(index: int, record: dict[str, Any]) -> Quarantined | None:
    """The quarantine of a record that keeps the contract but breaks a limit of the project (None: not)."""
    cid: str = record["company_id"]
    counts = (record["active_users"], record["events"])
    name, problem = "company_id", _company_id_limit(cid)
    if problem is None:
        over = [(n, v) for n, v in zip(("active_users", "events"), counts, strict=True) if v > COUNT_MAX]
        if not over:
            return None
        name, problem = over[0][0], f"is {excerpt(over[0][1])}, more than a 64-bit count holds ({COUNT_MAX})"
    return Quarantined(
        index=index,
        field=name,
        reason=f"field {name!r} {problem}",
        where=_where(index, cid),
        excerpt=redacted_excerpt(cid[: 4 * EXCERPT_CHARS]),
        company_id=None if name == "company_id" else cid,
        counts=counts,
    )


_get_company_id = itemgetter("company_id")
_get_active_users = itemgetter("active_users")
_get_events = itemgetter("events")


def parse_usage_page(body: bytes, *, day: date, source: str, quarantine: bool = False) -> ParsedPage:
    """Validate one ``200`` body of ``GET /v1/usage/daily`` for ``day`` against the contract.

    Returns the records column by column in page order (repeats are kept: the caller judges duplicates
    across the whole day) and the record fields beyond the contract. Any violation raises
    :class:`UsageDataError` naming ``source``, the record index, the company, the field and the value;
    with ``quarantine``, a record over one of the project's own limits is returned in
    :attr:`ParsedPage.quarantined` instead (see the module's doc).
    """
    doc = decode_json(body)
    if doc is INVALID:
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UsageDataError(f"{source}: the body is not valid JSON ({exc})") from None
    return parse_usage_doc(doc, day=day, source=source, quarantine=quarantine)


def parse_usage_doc(doc: Any, *, day: date, source: str, quarantine: bool = False) -> ParsedPage:
    """:func:`parse_usage_page` of a body already decoded (``Page.doc`` or :func:`decode_json`).

    The common case costs no Python bytecode per record: the columns are gathered and checked with
    C-level ``map``/``set``/``min``/``max`` passes. Only when a check fails does a record-by-record pass
    run, to name the first offending record precisely (or, with ``quarantine``, to set aside every record
    over a limit of the project's).
    """
    data, next_cursor = check_envelope(doc, day, source)
    quarantined: tuple[Quarantined, ...] = ()
    try:
        if not set(map(type, data)) <= {dict}:
            raise TypeError
        company_ids: list[Any] = list(map(_get_company_id, data))
        users: list[Any] = list(map(_get_active_users, data))
        events: list[Any] = list(map(_get_events, data))
    except (KeyError, TypeError):
        if quarantine:
            _quarantine_records(data, source)  # raises the contract violation that stopped the columns
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
        if not quarantine:
            _raise_first_bad_record(data, source)
        kept = _quarantine_records(data, source)
        if kept:
            out = {q.index for q in kept}
            company_ids = [v for i, v in enumerate(company_ids) if i not in out]
            users = [v for i, v in enumerate(users) if i not in out]
            events = [v for i, v in enumerate(events) if i not in out]
            quarantined = tuple(kept)
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
    return ParsedPage(company_ids, users, events, extra, next_cursor, first_extra, quarantined)


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
    """Raise the precise UsageDataError of the first record of ``data`` that breaks the contract or one of
    the project's limits."""
    for index, rec in enumerate(data):
        error = _contract_error(source, index, rec)
        if error is not None:
            raise error
        over = _limit_problem(index, rec)
        if over is not None:
            raise UsageDataError(f"{source}: {over.where}: {over.reason}")
    raise UsageDataError(f"{source}: invalid records")  # pragma: no cover - the fast checks agree


def _quarantine_records(data: list[Any], source: str) -> list[Quarantined]:
    """The records of ``data`` over a limit of the project's; a contract violation anywhere raises."""
    kept: list[Quarantined] = []
    for index, rec in enumerate(data):
        error = _contract_error(source, index, rec)
        if error is not None:
            raise error
        over = _limit_problem(index, rec)
        if over is not None:
            kept.append(over)
    return kept
