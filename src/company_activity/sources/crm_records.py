"""Streaming reader of the records of one CRM snapshot file (contract: ``specs/crm-csv.md``).

:class:`CrmReader` reads a binary file object (a lake file, or ``io.BytesIO``) in chunks of
:data:`CHUNK_BYTES`, decodes it line by line, hands the lines to the csv module and yields one
:class:`Record` per data record: a good one with its values, or a bad one with its reason. It keeps
nothing of the records it has yielded, so its memory does not grow with the file; it does not resolve
duplicates (the caller does, in memory for :func:`~.crm.parse_crm_csv` or in SQL for the streaming load).

Every record carries its first line number and its byte range in the file (``start``, ``end``), so the
original text of a rejected record can be read back from the file for the quarantine.

Values a warehouse cannot store are refused here, so that DuckDB and PostgreSQL load the same rows: a
NUL character in a used column (PostgreSQL cannot store it) and a value longer than
:data:`MAX_COMPANY_ID_CHARS` (``company_id``) or :data:`MAX_TEXT_CHARS` (the other used columns) make the
record bad. A field in an ignored column may be as long as a record may be (:data:`MAX_RECORD_CHARS`).
A CR outside quotes that does not end the line makes the record malformed (:func:`csv_problem`); every
other control character is data (``docs/crm-input.md``).

Messages quote input only as a short escaped excerpt (:func:`excerpt`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from ..errors import CrmFileError
from .crm_time import parse_timestamp

#: the longest ``company_id`` (characters) a row may have; a longer one quarantines the row
MAX_COMPANY_ID_CHARS = 256
#: the longest name, country, industry_tag or last_contact_at (characters)
MAX_TEXT_CHARS = 4096
#: the longest record (characters); the csv module's field limit is raised to it. A longer record, or
#: physical line, rejects the file: it is not a CRM snapshot, or a quote was left open.
MAX_RECORD_CHARS = 16 * 1024 * 1024
#: a *malformed* record longer than this (bytes) is taken for a quote left open that swallowed rows:
#: the file is rejected rather than losing those companies in one bad row (the csv module's default limit)
RUNAWAY_BYTES = 128 * 1024
#: how much of the file is read at a time
CHUNK_BYTES = 1 << 20
#: how many characters of input a message quotes
EXCERPT_CHARS = 40

_BOM = b"\xef\xbb\xbf"
_REQUIRED = ("company_id", "name")
_OPTIONAL = ("country", "industry_tag", "last_contact_at")
_ALIASES = {"company_name": "name"}
_KNOWN = frozenset(_REQUIRED + _OPTIONAL) | frozenset(_ALIASES)
_HEADER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,39}")


class BinaryReadable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def excerpt(value: str, limit: int = EXCERPT_CHARS) -> str:
    """``value`` cut to ``limit`` characters and quoted like ``repr`` (control characters escaped)."""
    if len(value) > limit:
        return repr(value[:limit]) + "…"
    return repr(value)


@dataclass(frozen=True, slots=True)
class CrmRow:
    """A good CRM row. ``last_contact_at`` is a naive datetime in UTC."""

    line: int
    company_id: str
    company_name: str | None
    country: str | None
    industry_tag: str | None
    last_contact_at: datetime | None


class Record(NamedTuple):
    """One data record, good when ``reason`` is None; bytes ``start:end`` of the file hold it.

    A bad record has no values (all None). ``last_contact_at`` is a naive datetime in UTC.
    """

    line: int
    start: int
    end: int
    reason: str | None
    company_id: str | None = None
    company_name: str | None = None
    country: str | None = None
    industry_tag: str | None = None
    last_contact_at: datetime | None = None


class _Lines:
    """The physical lines of a binary stream (split at LF, line ends kept), decoded as UTF-8."""

    def __init__(self, fh: BinaryReadable, source: str):
        self.fh = fh
        self.source = source
        self.line = 0  # lines handed out
        self.offset = 0  # bytes handed out (the end of the last line)
        self.exhausted = False

    def __iter__(self) -> Iterator[str]:
        for block in self._blocks():
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError as exc:
                offset = self.offset + exc.start
                line = self.line + block.count(b"\n", 0, exc.start) + 1
                bad = block[exc.start : exc.start + 4].hex(" ")
                raise CrmFileError(
                    f"CRM file {self.source}: not valid UTF-8 at byte offset {offset} (line {line}): "
                    f"{exc.reason} (bytes {bad})"
                ) from None
            ascii_only = len(text) == len(block)
            for line_text in io.StringIO(text, newline="\n").readlines():
                self.line += 1
                self.offset += len(line_text) if ascii_only else len(line_text.encode("utf-8"))
                yield line_text
        self.exhausted = True

    def _blocks(self) -> Iterator[bytes]:
        """The file in pieces that end at a line end (the last one maybe not)."""
        pending = self._first_chunk()
        while True:
            chunk = self.fh.read(CHUNK_BYTES)
            if not chunk:
                if pending:
                    if len(pending) > MAX_RECORD_CHARS and b"\n" not in pending[-MAX_RECORD_CHARS:]:
                        self._too_long()
                    yield pending
                return
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if not cut:
                if len(pending) > MAX_RECORD_CHARS:
                    self._too_long()
                continue
            yield pending[:cut]
            pending = pending[cut:]

    def _first_chunk(self) -> bytes:
        data = self.fh.read(CHUNK_BYTES)
        while len(data) < len(_BOM):
            more = self.fh.read(CHUNK_BYTES)
            if not more:
                break
            data += more
        if data.startswith(_BOM):
            self.offset = len(_BOM)
            return data[len(_BOM) :]
        return data

    def _too_long(self) -> None:
        raise CrmFileError(
            f"CRM file {self.source}: line {self.line + 1} is longer than {MAX_RECORD_CHARS} bytes; "
            "the file is not a CRM snapshot"
        )


class CrmReader:
    """The header and then the data records of one CRM snapshot file; see the module docstring.

    Constructing it reads the header (:class:`CrmFileError` when it is missing or unusable); iterating
    yields the records once. ``total``, ``bad`` and ``good`` count the records yielded so far.
    """

    def __init__(self, fh: BinaryReadable, source: str):
        if csv.field_size_limit() < MAX_RECORD_CHARS:
            csv.field_size_limit(MAX_RECORD_CHARS)  # process-wide; only ever raised
        self.source = source
        self._lines = _Lines(fh, source)
        self._reader = csv.reader(iter(self._lines), strict=True)
        self._end_line = 0  # the last physical line the reader has consumed
        self._end_offset = 0
        header = self._header()
        positions, self.extra_columns = _map_header(header, source)
        self.n_fields = len(header)
        self._used = [(name, positions[name]) for name in (*_REQUIRED, *_OPTIONAL) if name in positions]
        self._i_id = positions["company_id"]
        self._i_name = positions["name"]
        self._i_country = positions.get("country")
        self._i_industry = positions.get("industry_tag")
        self._i_contact = positions.get("last_contact_at")
        self.total = 0
        self.bad = 0
        self.good = 0

    def _advance(self) -> tuple[int, int]:
        """The first line and byte offset of the record just read; moves the end marks past it."""
        start = (self._end_line + 1, self._end_offset)
        self._end_line, self._end_offset = self._lines.line, self._lines.offset
        return start

    def _header(self) -> list[str]:
        while True:
            line = self._end_line + 1
            try:
                record = next(self._reader, None)
            except csv.Error as exc:
                if self._lines.exhausted:
                    raise self._unterminated(line) from None
                raise CrmFileError(
                    f"CRM file {self.source}: the header at line {line} is malformed: {csv_problem(exc)}"
                ) from None
            if record is None:
                raise CrmFileError(f"CRM file {self.source}: the file is empty (no header, no rows)")
            self._advance()
            if record:
                return record

    def _unterminated(self, start: int) -> CrmFileError:
        return CrmFileError(
            f"CRM file {self.source}: the record starting at line {start} runs on to line "
            f"{self._lines.line}, the end of the file: its quoted field is never closed "
            "(unbalanced '\"'); the rest of the file cannot be read"
        )

    def __iter__(self) -> Iterator[Record]:
        while True:  # resumes after a malformed record
            try:
                for fields in self._reader:
                    line, start = self._advance()
                    if not fields:  # a completely empty line
                        continue
                    record = self._record(fields, line, start)
                    self.total += 1
                    if record.reason is not None:
                        self.bad += 1
                    else:
                        self.good += 1
                    yield record
                return
            except csv.Error as exc:
                first = self._end_line + 1
                if self._lines.exhausted:
                    raise self._unterminated(first) from None
                line, start = self._advance()
                size = self._end_offset - start
                if size > RUNAWAY_BYTES or "field larger than field limit" in str(exc):
                    # A quote left open ran on over many rows until a later quote stopped it: the row
                    # boundaries in between are lost, and one "bad row" would silently drop every company
                    # it swallowed.
                    raise CrmFileError(
                        f"CRM file {self.source}: the record starting at line {line} runs on to line "
                        f"{self._end_line} ({size} bytes) and is malformed, most likely from an unbalanced "
                        f"'\"': {exc}"
                    ) from None
                where = f"line {line}" if self._end_line == line else f"lines {line}-{self._end_line}"
                self.total += 1
                self.bad += 1
                yield Record(line, start, self._end_offset, f"malformed CSV ({where}): {csv_problem(exc)}")

    def _record(self, fields: list[str], line: int, start: int) -> Record:
        end = self._end_offset
        if len(fields) != self.n_fields:
            return Record(line, start, end, f"expected {self.n_fields} fields, found {len(fields)}")
        company_id = fields[self._i_id].strip()
        name = fields[self._i_name].strip()
        country = fields[self._i_country].strip() if self._i_country is not None else ""
        industry = fields[self._i_industry].strip() if self._i_industry is not None else ""
        contact_text = fields[self._i_contact].strip() if self._i_contact is not None else ""
        if (
            len(company_id) > MAX_COMPANY_ID_CHARS
            or max(len(name), len(country), len(industry), len(contact_text)) > MAX_TEXT_CHARS
            or "\x00" in company_id
            or "\x00" in name
            or "\x00" in country
            or "\x00" in industry
            or "\x00" in contact_text
        ):
            return Record(line, start, end, self._unstorable(fields))
        contact = parse_timestamp(contact_text) if contact_text else None
        if not company_id or (contact is None and contact_text):
            problems: list[str] = []
            if not company_id:
                problems.append("empty company_id")
            if contact is None and contact_text:
                problems.append(f"unparseable last_contact_at {excerpt(contact_text)}")
            return Record(line, start, end, "; ".join(problems))
        return Record(
            line, start, end, None, company_id, name or None, country or None, industry or None, contact
        )

    def _unstorable(self, fields: list[str]) -> str:
        """Why a record's used values cannot be stored (too long, or a NUL character)."""
        problems: list[str] = []
        for name, index in self._used:
            value = fields[index].strip()
            limit = MAX_COMPANY_ID_CHARS if name == "company_id" else MAX_TEXT_CHARS
            if len(value) > limit:
                problems.append(f"{name} too long: {len(value)} characters, more than the {limit} allowed")
            elif "\x00" in value:
                problems.append(f"{name} holds a NUL character (\\x00), which the warehouse cannot store")
        return "; ".join(problems)


def csv_problem(exc: csv.Error) -> str:
    """The csv module's complaint about a record, in words that fit a CRM file.

    Its "new-line character seen in unquoted field" (with a hint about opening files) is always a CR
    outside quotes that does not end the line: the lines reach it split at LF, so a LF never sits inside
    an unquoted field. Such a CR (in an unquoted value, after a closing quote, or CR-only line ends) leaves
    the record boundaries in doubt, so the record is not read.
    """
    text = str(exc)
    if text.startswith("new-line character seen in unquoted field"):
        return (
            "a carriage return (\\r) outside quotes that does not end the line "
            "(a value holding a CR must be quoted; line ends are LF or CRLF)"
        )
    return text


def _looks_like_header(header: list[str]) -> bool:
    """Whether a first line may be quoted in a message: a few plain column names, nothing else."""
    return 0 < len(header) <= 50 and all(_HEADER_NAME.fullmatch(h.strip()) for h in header if h.strip())


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
                f"({excerpt(spelled[canonical])} in column {positions[canonical] + 1} and {excerpt(written)} "
                f"in column {index + 1}); the file is ambiguous"
            )
        positions[canonical] = index
        spelled[canonical] = written
    missing = [c if c != "name" else "name (or company_name)" for c in _REQUIRED if c not in positions]
    if missing:
        line = ",".join(header)
        if _looks_like_header(header):
            shown = f"header is {excerpt(line)}"
        else:
            shown = f"the first line does not look like a CSV header ({len(line)} characters, not shown)"
        raise CrmFileError(
            f"CRM file {source}: the header lacks required column(s): {', '.join(missing)}; {shown}"
        )
    return positions, extra
