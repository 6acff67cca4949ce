"""The CRM daily snapshot CSV parser (contract: ``specs/crm-csv.md``).

:func:`parse_crm_csv` turns the bytes of one snapshot file into good rows, rejected rows and counts;
:func:`quarantine_csv` renders the rejected rows for the quarantine file in the lake. Nothing here does
I/O: the caller reads the file and writes the quarantine.

The file
    UTF-8, optionally with a byte order mark; anything else is a :class:`CrmFileError` naming the byte
    offset and line of the first bad byte. Comma-separated, RFC 4180 quoting (embedded commas, doubled
    quotes and line breaks inside quoted fields), LF or CRLF line ends. Line numbers are physical lines
    (split at LF) counted from 1, the header being line 1; a record's line is the line where it starts,
    so records after a quoted field that spans lines get their true line in the file.

The header
    Names are matched case-insensitively with surrounding white space ignored, in any order.
    ``company_id`` and ``name`` (alias ``company_name``) are required; ``country``, ``industry_tag`` and
    ``last_contact_at`` are optional (an absent column gives NULL for every row). A recognised column that
    appears twice (including ``name`` together with ``company_name``) makes the file ambiguous and is a
    :class:`CrmFileError`. Other columns are ignored and reported once in
    :attr:`CrmParseResult.extra_columns`, as written in the header.

The rows
    * A completely empty line (nothing between two line ends, not even spaces) is not a record: it is
      skipped and not counted. A line holding only spaces is a record (with the wrong number of fields).
    * Every value is trimmed (``str.strip``: leading and trailing white space, including line breaks
      inside quoted values); an empty value is NULL. Values are otherwise kept verbatim: they are data,
      never interpreted (``=HYPERLINK("x")`` or ``'); drop table x; --`` stay as written).
    * A record is *bad* and rejected when it has a different number of fields than the header, when its
      ``company_id`` is empty after trimming, when ``last_contact_at`` is not an ISO-8601 date or
      date-time in the accepted forms (see :func:`parse_timestamp`), or when it is malformed CSV (such as
      text after a closing quote). A quote that is never closed swallows the rest of the file and is
      a :class:`CrmFileError`; so is a malformed record longer than the csv module's field limit
      (128 KiB), which in practice is an open quote that ran on over many rows: the companies in those
      rows would otherwise vanish into one "bad row".
    * Duplicate ``company_id`` (compared exactly, after trimming): the row with the latest
      ``last_contact_at`` wins, NULL being the oldest and a tie going to the later row in the file; the
      others are rejected as *duplicates* (``RejectedRow.duplicate``).

File-level failures (:class:`CrmFileError`, nothing of the file may be loaded)
    not UTF-8; an empty file or a header without data rows; a missing required column; a duplicated
    recognised column; an unterminated or runaway quoted field; more bad rows than ``max_bad_fraction``
    of the data records (default 5%: ``bad / total > max_bad_fraction`` fails, so exactly 5% passes);
    zero good rows. **Duplicates are not bad rows**: they are valid records superseded by another row, so
    they do not count towards the bad-row fraction (they do count in ``total_rows``, its denominator).
    The two row-count failures raise :class:`CrmBadRowsError`, a
    :class:`CrmFileError` that carries the full :class:`CrmParseResult` so the caller can still quarantine
    the rejected rows.
"""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import CrmFileError

__all__ = [
    "CrmBadRowsError",
    "CrmParseResult",
    "CrmRow",
    "RejectedRow",
    "parse_crm_csv",
    "parse_timestamp",
    "quarantine_csv",
]

_BOM = b"\xef\xbb\xbf"

# Canonical column names; ``company_name`` is an alias of ``name``.
_REQUIRED = ("company_id", "name")
_OPTIONAL = ("country", "industry_tag", "last_contact_at")
_ALIASES = {"company_name": "name"}
_KNOWN = frozenset(_REQUIRED + _OPTIONAL) | frozenset(_ALIASES)

_MAX_QUOTED_VALUE = 100  # a value quoted in a rejection reason is cut to this many characters


@dataclass(frozen=True, slots=True)
class CrmRow:
    """A good CRM row. ``last_contact_at`` is a naive datetime in UTC."""

    line: int
    company_id: str
    company_name: str | None
    country: str | None
    industry_tag: str | None
    last_contact_at: datetime | None


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A rejected record: bad (``duplicate=False``) or superseded by a duplicate that won."""

    line: int
    reason: str
    raw: str
    duplicate: bool = False


@dataclass
class CrmParseResult:
    """What one CRM snapshot file holds.

    ``rows`` are the good rows after duplicate resolution in file order; ``rejected`` are the bad rows and
    the duplicates in line order; ``total_rows`` counts the data records (not the header, not empty lines).
    """

    source: str
    rows: list[CrmRow]
    rejected: list[RejectedRow]
    extra_columns: list[str]
    total_rows: int

    @property
    def bad_count(self) -> int:
        """Rejected rows that are bad (duplicates excluded)."""
        return sum(1 for r in self.rejected if not r.duplicate)

    @property
    def duplicate_count(self) -> int:
        """Rejected rows that lost to a duplicate ``company_id``."""
        return sum(1 for r in self.rejected if r.duplicate)


class CrmBadRowsError(CrmFileError):
    """The file is rejected for its rows (too many bad rows, or no good row); ``result`` has them all."""

    def __init__(self, message: str, result: CrmParseResult):
        super().__init__(message)
        self.result = result


def parse_timestamp(value: str) -> datetime | None:
    """Parse a ``last_contact_at`` value to a naive UTC datetime; ``None`` when it is not accepted.

    Accepted (ISO-8601 extended format, as in RFC 3339)::

        YYYY-MM-DD                                   midnight UTC
        YYYY-MM-DD<sep>hh:mm[:ss[<frac>]][<offset>]
            <sep>    'T', 't' or one space
            <frac>   '.' or ',' and one or more digits (kept to the microsecond, further digits dropped)
            <offset> 'Z', 'z', '+hh:mm', '+hhmm', '+hh' (or '-'); none means UTC

    Everything else is refused, including forms ``datetime.fromisoformat`` would take (``20260102``,
    ``2026-W01-1``, ``2026-01-02T10``, ``2026-01-02T1000``, offsets with seconds), impossible dates and
    times (``2026-13-01``, hour 24), and non-ASCII digits. An offset is converted to UTC.

    The layout (separators and lengths) is checked here, without a regular expression; the digits and the
    ranges are checked by ``datetime.fromisoformat``, which parses the part before the offset.
    """
    n = len(value)
    if (n < 16 and n != 10) or value[4] != "-" or value[7] != "-" or not value.isascii():
        return None
    offset: timedelta | None = None
    if n == 10:
        end = 10
    else:
        if value[10] not in "Tt ":
            return None
        # The offset, found by its length: 'Z', '+hh:mm', '+hhmm', '+hh'; the time never holds a sign.
        if value[-1] in "Zz":
            end = n - 1
        elif value[-6] in "+-":
            end = n - 6
        elif value[-5] in "+-":
            end = n - 5
        elif value[-3] in "+-":
            end = n - 3
        else:
            end = n
        if end < n - 1:
            offset = _offset(value[end:])
            if offset is None:
                return None
        # the time: hh:mm, hh:mm:ss, or hh:mm:ss + '.'/',' + digits
        length = end - 11
        if length < 5 or value[13] != ":":
            return None
        if length != 5 and (value[16] != ":" or (length != 8 and (length < 10 or value[19] not in ".,"))):
            return None
    try:
        parsed = datetime.fromisoformat(value[:end])
        return parsed if offset is None else parsed - offset
    except (ValueError, OverflowError):
        return None


_OFFSETS: dict[str, timedelta | None] = {}


def _offset(text: str) -> timedelta | None:
    """``+hh``, ``+hhmm`` or ``+hh:mm`` (or ``-``) as a timedelta, ``None`` when malformed (memoised)."""
    try:
        return _OFFSETS[text]
    except KeyError:
        pass
    digits = text[1:]
    if len(digits) == 5 and digits[2] == ":":
        digits = digits[:2] + digits[3:]
    result: timedelta | None = None
    if len(digits) in (2, 4) and digits.isdigit():
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours < 24 and minutes < 60:
            result = timedelta(0, (hours * 60 + minutes) * 60)
            if text[0] == "-":
                result = -result
    if len(_OFFSETS) < 10_000:  # the valid ones are fewer than 6,000; do not grow on garbage
        _OFFSETS[text] = result
    return result


def _decode(data: bytes, source: str) -> str:
    start = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = data.count(b"\n", 0, offset) + 1
        bad = data[offset : offset + 4].hex(" ")
        raise CrmFileError(
            f"CRM file {source}: not valid UTF-8 at byte offset {offset} (line {line}): "
            f"{exc.reason} (bytes {bad})"
        ) from None


def _quote(value: str) -> str:
    if len(value) > _MAX_QUOTED_VALUE:
        value = value[:_MAX_QUOTED_VALUE] + "…"
    return repr(value)


def _raw(lines: list[str], first: int, last: int) -> str:
    """The text of physical lines ``first..last`` (1-based), without the final line end."""
    text = "".join(lines[first - 1 : last])
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return text


def _map_header(header: list[str], source: str) -> tuple[dict[str, int], list[str]]:
    """Column positions of the recognised columns (canonical names) and the extra header names."""
    positions: dict[str, int] = {}
    spelled: dict[str, str] = {}
    extra: list[str] = []
    for index, written in enumerate(header):
        key = written.strip().lower()
        if key not in _KNOWN:
            extra.append(written)
            continue
        canonical = _ALIASES.get(key, key)
        if canonical in positions:
            raise CrmFileError(
                f"CRM file {source}: column {canonical} appears more than once in the header "
                f"({spelled[canonical]!r} in column {positions[canonical] + 1} and {written!r} in column "
                f"{index + 1}); the file is ambiguous"
            )
        positions[canonical] = index
        spelled[canonical] = written
    missing = [c if c != "name" else "name (or company_name)" for c in _REQUIRED if c not in positions]
    if missing:
        raise CrmFileError(
            f"CRM file {source}: the header lacks required column(s): {', '.join(missing)}; "
            f"header is {','.join(header)!r}"
        )
    return positions, extra


def parse_crm_csv(data: bytes, *, source: str, max_bad_fraction: float = 0.05) -> CrmParseResult:
    """Parse one CRM snapshot file; see the module docstring for the rules.

    ``source`` names the file in messages. ``max_bad_fraction`` is the largest share of bad records
    (duplicates not counted) the file may have and still load; more raises :class:`CrmBadRowsError`.
    A completely empty line is skipped: it is not a record and does not count in ``total_rows``.

    The cyclic garbage collector is paused while the rows are built (it is restored afterwards): the
    rows hold no cycles, and the collector's passes over millions of young objects would double the time.
    """
    if not 0.0 <= max_bad_fraction <= 1.0:  # also refuses NaN
        raise ValueError(f"max_bad_fraction must be between 0 and 1, not {max_bad_fraction!r}")
    text = _decode(data, source)
    lines = io.StringIO(text, newline="\n").readlines()
    del text
    with _gc_paused():
        return _parse_lines(lines, source, max_bad_fraction)


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_lines(lines: list[str], source: str, max_bad_fraction: float) -> CrmParseResult:
    exhausted = False

    def feed() -> Iterator[str]:
        nonlocal exhausted
        yield from lines
        exhausted = True

    reader = csv.reader(feed(), strict=True)
    previous_end = 0  # the last physical line the reader has consumed

    def unterminated(start: int) -> CrmFileError:
        return CrmFileError(
            f"CRM file {source}: the quoted field in the record starting at line {start} is never closed "
            f"(unbalanced '\"'); the rest of the file cannot be read"
        )

    # The header: the first record that is not an empty line.
    header: list[str] = []
    while not header:
        start = previous_end + 1
        try:
            record = next(reader, None)
        except csv.Error as exc:
            if exhausted:
                raise unterminated(start) from None
            raise CrmFileError(f"CRM file {source}: the header at line {start} is malformed: {exc}") from None
        if record is None:
            raise CrmFileError(f"CRM file {source}: the file is empty (no header, no rows)")
        previous_end = reader.line_num
        header = record
    positions, extra_columns = _map_header(header, source)
    n_fields = len(header)
    i_id = positions["company_id"]
    i_name = positions["name"]
    i_country = positions.get("country")
    i_industry = positions.get("industry_tag")
    i_contact = positions.get("last_contact_at")

    good: list[CrmRow] = []
    winner: dict[str, CrmRow] = {}  # per company_id, the row that wins so far
    last_line: dict[int, int] = {}  # the last physical line of good rows spanning lines, for duplicates' raw
    bad: list[RejectedRow] = []
    total = 0
    while True:  # resumes after a malformed record
        try:
            for record in reader:
                start = previous_end + 1
                previous_end = reader.line_num
                if not record:  # a completely empty line
                    continue
                total += 1
                if len(record) != n_fields:
                    reason = f"expected {n_fields} fields, found {len(record)}"
                    bad.append(RejectedRow(start, reason, _raw(lines, start, previous_end)))
                    continue
                company_id = record[i_id].strip()
                contact: datetime | None = None
                contact_text = record[i_contact].strip() if i_contact is not None else ""
                if contact_text:
                    contact = parse_timestamp(contact_text)
                if not company_id or (contact is None and contact_text):
                    reasons: list[str] = []
                    if not company_id:
                        reasons.append("empty company_id")
                    if contact is None and contact_text:
                        reasons.append(f"unparseable last_contact_at {_quote(contact_text)}")
                    bad.append(RejectedRow(start, "; ".join(reasons), _raw(lines, start, previous_end)))
                    continue
                row = CrmRow(
                    start,
                    company_id,
                    record[i_name].strip() or None,
                    record[i_country].strip() or None if i_country is not None else None,
                    record[i_industry].strip() or None if i_industry is not None else None,
                    contact,
                )
                good.append(row)
                if previous_end != start:
                    last_line[start] = previous_end
                held = winner.setdefault(company_id, row)
                if held is not row:
                    # the latest last_contact_at wins; NULL is the oldest; on a tie the later row wins
                    old = held.last_contact_at
                    if old is None or (contact is not None and contact >= old):
                        winner[company_id] = row
            break
        except csv.Error as exc:
            start = previous_end + 1
            if exhausted:
                raise unterminated(start) from None
            previous_end = reader.line_num
            where = f"line {start}" if previous_end == start else f"lines {start}-{previous_end}"
            raw = _raw(lines, start, previous_end)
            if len(raw) > csv.field_size_limit():
                # A quote left open ran on over many rows until the csv module's field limit (or a later
                # quote) stopped it: the row boundaries in between are lost, and rejecting it as one bad
                # row would silently drop every company it swallowed.
                raise CrmFileError(
                    f"CRM file {source}: the record starting at line {start} runs on to line {previous_end} "
                    f"({len(raw)} characters, more than the {csv.field_size_limit()} a field may hold), "
                    f"most likely from an unbalanced '\"': {exc}"
                ) from None
            total += 1
            bad.append(RejectedRow(start, f"malformed CSV ({where}): {exc}", raw))

    if total == 0:
        raise CrmFileError(f"CRM file {source}: the file has a header but no data rows")

    if len(winner) == len(good):
        rows, rejected = good, bad
    else:
        rows, duplicates = _split_duplicates(good, winner, last_line, lines)
        rejected = sorted(bad + duplicates, key=lambda r: r.line)
    result = CrmParseResult(
        source=source, rows=rows, rejected=rejected, extra_columns=extra_columns, total_rows=total
    )

    n_bad = len(bad)
    fraction = n_bad / total
    if fraction > max_bad_fraction:
        examples = "; ".join(f"line {r.line}: {r.reason}" for r in bad[:3])
        raise CrmBadRowsError(
            f"CRM file {source}: {n_bad} of {total} rows are bad ({fraction:.2%}), more than the allowed "
            f"{max_bad_fraction:.2%}; the file is rejected (first: {examples})",
            result,
        )
    if not rows:
        raise CrmBadRowsError(
            f"CRM file {source}: no good rows ({total} rows, {n_bad} bad); the file is rejected", result
        )
    return result


def _split_duplicates(
    good: list[CrmRow], winner: dict[str, CrmRow], last_line: dict[int, int], lines: list[str]
) -> tuple[list[CrmRow], list[RejectedRow]]:
    """The winning rows, in file order, and the others rejected as duplicates."""
    rows: list[CrmRow] = []
    duplicates: list[RejectedRow] = []
    for row in good:
        kept = winner[row.company_id]
        if kept is row:
            rows.append(row)
        else:
            reason = f"duplicate company_id {row.company_id} (kept line {kept.line})"
            raw = _raw(lines, row.line, last_line.get(row.line, row.line))
            duplicates.append(RejectedRow(row.line, reason, raw, duplicate=True))
    return rows, duplicates


def quarantine_csv(rejected: Sequence[RejectedRow]) -> bytes:
    """The quarantine file: UTF-8 CSV with the header ``line,reason,raw``, RFC 4180 quoting, CRLF.

    ``raw`` is the record's original text (several lines when it held a quoted line break); values are
    written verbatim, quoted when they hold a comma, a quote or a line break.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("line", "reason", "raw"))
    writer.writerows((r.line, r.reason, r.raw) for r in rejected)
    return out.getvalue().encode("utf-8")
