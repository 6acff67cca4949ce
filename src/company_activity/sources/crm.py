"""The CRM daily snapshot CSV parser (contract: ``specs/crm-csv.md``).

:func:`parse_crm_csv` turns the bytes of one snapshot file into good rows, rejected rows and counts;
:func:`quarantine_csv` renders the rejected rows for the quarantine file in the lake. Nothing here does
I/O: the caller reads the file and writes the quarantine. Both are built on the streaming
:class:`~.crm_records.CrmReader`, which the pipeline uses directly (:mod:`~.warehouse.crm_load`) so
that memory does not grow with the file; this module holds a whole file and is for tests and tools.

The file
    UTF-8, optionally with a byte order mark; anything else is a :class:`CrmFileError` naming the byte
    offset and line of the first bad byte. Comma-separated, RFC 4180 quoting (embedded commas, doubled
    quotes and line breaks inside quoted fields), LF or CRLF line ends. Line numbers are physical lines
    (split at LF) counted from 1, the header being line 1; a record's line is the line where it starts,
    so records after a quoted field that spans lines get their true line in the file.

Messages quote input only as a short escaped excerpt (40 characters, ``repr``-escaped); a first line
that does not look like a header is not quoted at all (it may be anything, a secret included).

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
      date-time in the accepted forms (see :func:`parse_timestamp`), when it is malformed CSV (such as
      text after a closing quote), or when a used column holds a value no warehouse may store: a NUL
      character, a ``company_id`` over 256 characters or another used value over 4,096 characters
      (:mod:`.crm_records`). A field in an ignored column may be long (up to the 16 MiB a record may be).
      A quote that is never closed swallows the rest of the file and is a :class:`CrmFileError`; so is a
      malformed record longer than 128 KiB, which in practice is an open quote that ran on over many
      rows: the companies in those rows would otherwise vanish into one "bad row". So is a record or
      line over 16 MiB.
    * Control characters (``docs/crm-input.md`` has the table): inside quotes a CR or LF is data (kept,
      the line count still going by LF); a NUL in a used column makes the record bad (no warehouse
      text can hold it); a CR outside quotes that does not end the line makes the record malformed CSV
      (its record boundaries are in doubt); every other control character (TAB, VT, FF, ESC, DEL, C1,
      U+2028 …) is data, stored as written (trimmed at a value's ends when it is white space).
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

from ..errors import CrmFileError
from .crm_records import CrmReader, CrmRow, excerpt
from .crm_time import parse_timestamp

__all__ = [
    "CrmBadRowsError",
    "CrmParseResult",
    "CrmRow",
    "RejectedRow",
    "parse_crm_csv",
    "parse_timestamp",
    "quarantine_csv",
    "rows_error",
]


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


def rows_error(
    source: str, *, total: int, bad: int, good: int, max_bad_fraction: float, examples: Sequence[str]
) -> str | None:
    """Why a file is rejected for its rows (too many bad, none good), ``None`` when it is not.

    ``examples`` are the first bad rows as ``line N: reason``.
    """
    fraction = bad / total
    if fraction > max_bad_fraction:
        return (
            f"CRM file {source}: {bad} of {total} rows are bad ({fraction:.2%}), more than the allowed "
            f"{max_bad_fraction:.2%}; the file is rejected (first: {'; '.join(examples[:3])})"
        )
    if not good:
        return f"CRM file {source}: no good rows ({total} rows, {bad} bad); the file is rejected"
    return None


def duplicate_reason(company_id: str, kept_line: int) -> str:
    """The quarantine reason of a row that lost to a duplicate ``company_id``."""
    plain = company_id.isprintable() and len(company_id) <= 40
    return f"duplicate company_id {company_id if plain else excerpt(company_id)} (kept line {kept_line})"


def raw_text(data: bytes) -> str:
    """The original text of a record from its bytes, without the final line end."""
    text = data.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return text


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
    with _gc_paused():
        return _parse(data, source, max_bad_fraction)


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(data: bytes, source: str, max_bad_fraction: float) -> CrmParseResult:
    reader = CrmReader(io.BytesIO(data), source)
    good: list[CrmRow] = []
    ranges: dict[int, tuple[int, int]] = {}  # line -> bytes of the good rows, for duplicates' raw
    winner: dict[str, CrmRow] = {}  # per company_id, the row that wins so far
    bad: list[RejectedRow] = []
    for record in reader:
        if record.reason is not None:
            bad.append(RejectedRow(record.line, record.reason, raw_text(data[record.start : record.end])))
            continue
        assert record.company_id is not None
        row = CrmRow(
            record.line,
            record.company_id,
            record.company_name,
            record.country,
            record.industry_tag,
            record.last_contact_at,
        )
        good.append(row)
        ranges[row.line] = (record.start, record.end)
        held = winner.setdefault(row.company_id, row)
        if held is not row:
            # the latest last_contact_at wins; NULL is the oldest; on a tie the later row wins
            old = held.last_contact_at
            if old is None or (row.last_contact_at is not None and row.last_contact_at >= old):
                winner[row.company_id] = row
    if reader.total == 0:
        raise CrmFileError(f"CRM file {source}: the file has a header but no data rows")

    if len(winner) == len(good):
        rows, rejected = good, bad
    else:
        rows = []
        duplicates: list[RejectedRow] = []
        for row in good:
            kept = winner[row.company_id]
            if kept is row:
                rows.append(row)
            else:
                start, end = ranges[row.line]
                reason = duplicate_reason(row.company_id, kept.line)
                duplicates.append(RejectedRow(row.line, reason, raw_text(data[start:end]), duplicate=True))
        rejected = sorted(bad + duplicates, key=lambda r: r.line)
    result = CrmParseResult(
        source=source,
        rows=rows,
        rejected=rejected,
        extra_columns=reader.extra_columns,
        total_rows=reader.total,
    )
    message = rows_error(
        source,
        total=reader.total,
        bad=len(bad),
        good=len(rows),
        max_bad_fraction=max_bad_fraction,
        examples=[f"line {r.line}: {r.reason}" for r in bad[:3]],
    )
    if message:
        raise CrmBadRowsError(message, result)
    return result


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
