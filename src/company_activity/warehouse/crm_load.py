"""Loading one CRM snapshot into staging, streamed: memory does not grow with the file.

:func:`load_crm_snapshot` reads the file from the lake in chunks (:class:`~.sources.crm_records.CrmReader`)
and, in ONE transaction (the caller's, when it has one):

1. bulk-loads every data record into the temporary table ``crm_load``: the good rows with their values,
   the bad ones with their reason; each with its first line and its byte range in the file;
2. resolves duplicate ``company_id`` in SQL (``crm_load_duplicates``: latest ``last_contact_at`` wins,
   NULL oldest, a tie to the later row), so no row is held in Python;
3. writes the quarantine file (bad rows and duplicates in line order, each with the original text read
   back from the file by its byte range), streamed into the lake;
4. checks the bad-row fraction and that a good row is left: a rejected file raises
   :class:`~.errors.CrmFileError`, which rolls the transaction back, so staging stays as it was;
5. replaces the day in ``stg.crm_daily``.

No temporary file is written: DuckDB receives the rows as bound values (``bulk_insert``), PostgreSQL
through ``COPY``; the quarantine is written straight into the lake (a local lake writes a temporary file
next to it and renames it).

Expected OS errors reading the snapshot or writing the quarantine (a folder where the file should be,
permission denied, a read-only lake, a full disk) are a :class:`~.errors.StorageError` of one line
naming the path and the cause.
"""

from __future__ import annotations

import csv
import errno
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, BinaryIO

from ..errors import CrmFileError, StorageError
from ..sources.crm import duplicate_reason, raw_text, rows_error
from ..sources.crm_records import CrmReader
from ..storage import Lake
from . import Warehouse

__all__ = ["CrmLoadSummary", "load_crm_snapshot"]

_COLUMNS = (
    "company_id",
    "company_name",
    "country",
    "industry_tag",
    "last_contact_at",
    "source_line",
    "byte_start",
    "byte_end",
    "reason",
)
#: rejected rows fetched from the warehouse at a time when writing the quarantine
QUARANTINE_PAGE = 10_000
_WRITE_CHARS = 1 << 20


@dataclass
class CrmLoadSummary:
    """What a loaded snapshot held; ``changed`` says whether staging for the day changed."""

    rows: int
    bad: int
    duplicates: int
    total: int
    extra_columns: list[str] = field(default_factory=list)
    changed: bool = False

    @property
    def rejected(self) -> int:
        return self.bad + self.duplicates


def load_crm_snapshot(
    wh: Warehouse,
    lake: Lake,
    rel: str,
    *,
    day: date,
    run_id: str,
    now: datetime,
    quarantine: str,
    max_bad_fraction: float,
    replace: Callable[[], bool] | None = None,
) -> CrmLoadSummary:
    """Load the snapshot at ``rel`` (lake path) as the CRM staging of ``day``; see the module docstring.

    ``quarantine`` is the lake path of the quarantine file, written when a record is rejected (also when
    the whole file is rejected for its rows). Raises CrmFileError (nothing loaded) or StorageError.
    ``replace`` (issue 13, the Spark engine): called instead of step 5 with ``crm_load`` holding the
    winners; it stores them elsewhere and says whether the day changed.
    """
    if not 0.0 <= max_bad_fraction <= 1.0:  # also refuses NaN
        raise ValueError(f"max_bad_fraction must be between 0 and 1, not {max_bad_fraction!r}")
    source = lake.url(rel)
    with wh.transaction():
        wh.run("staging.sql", "crm_load_create")
        examples: list[str] = []
        with _reading(lake, rel) as fh:
            reader = CrmReader(fh, source)
            wh.bulk_insert("crm_load", _COLUMNS, _load_rows(reader, examples))
        if reader.total == 0:
            raise CrmFileError(f"CRM file {source}: the file has a header but no data rows")
        wh.run("staging.sql", "crm_load_duplicates")
        duplicates = int(wh.scalar("staging.sql", "crm_dup_count") or 0)
        if reader.bad or duplicates:
            _write_quarantine(wh, lake, rel, quarantine)
        message = rows_error(
            source,
            total=reader.total,
            bad=reader.bad,
            good=reader.good - duplicates,
            max_bad_fraction=max_bad_fraction,
            examples=examples,
        )
        if message:
            raise CrmFileError(message)
        wh.run("staging.sql", "crm_load_keep_winners")
        if replace is not None:  # issue 13: the winners go to another engine
            changed = replace()
        else:
            diff = int(wh.scalar("staging.sql", "crm_load_changed", {"day": day}) or 0)
            previously = int(wh.scalar("staging.sql", "crm_day_count", {"day": day}) or 0)
            changed = diff > 0 or previously == 0
            wh.run(
                "staging.sql",
                "crm_replace_day",
                {"day": day, "source_file": rel, "loaded_at": now, "run_id": run_id},
            )
        wh.run("staging.sql", "crm_load_drop")
    return CrmLoadSummary(
        rows=reader.good - duplicates,
        bad=reader.bad,
        duplicates=duplicates,
        total=reader.total,
        extra_columns=reader.extra_columns,
        changed=changed,
    )


def _load_rows(reader: CrmReader, examples: list[str]) -> Iterator[tuple[Any, ...]]:
    """The rows of ``crm_load``: the values (datetimes as they are), the line, the bytes, the reason."""
    for line, start, end, reason, company_id, name, country, industry, contact in reader:
        if reason is not None and len(examples) < 3:
            examples.append(f"line {line}: {reason}")
        yield (company_id, name, country, industry, contact, line, start, end, reason)


def _write_quarantine(wh: Warehouse, lake: Lake, rel: str, quarantine: str) -> None:
    """The rejected records as ``line,reason,raw`` (UTF-8, RFC 4180, CRLF), streamed into the lake."""
    with _reading(lake, rel) as source, _writing(lake, quarantine) as out:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(("line", "reason", "raw"))
        after = 0
        while True:
            page = wh.run("staging.sql", "crm_quarantine_page", {"after": after, "limit": QUARANTINE_PAGE})
            for line, reason, company_id, kept_line, start, end in page:
                if reason is None:
                    reason = duplicate_reason(company_id, kept_line)
                source.seek(start)
                writer.writerow((line, reason, raw_text(source.read(end - start))))
                if buffer.tell() > _WRITE_CHARS:
                    out.write(buffer.getvalue().encode("utf-8"))
                    buffer.seek(0)
                    buffer.truncate()
            if len(page) < QUARANTINE_PAGE:
                break
            after = page[-1][0]
        out.write(buffer.getvalue().encode("utf-8"))


class _Guarded(io.RawIOBase):
    """A file whose OS errors become StorageError naming ``url``."""

    def __init__(self, fh: BinaryIO, url: str, what: str):
        super().__init__()
        self._fh = fh
        self._url = url
        self._what = what

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._fh.read(size)
        except OSError as exc:
            raise _storage_error(self._what, self._url, exc) from None

    def readinto(self, buffer: Any, /) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def write(self, data: Any, /) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            raise _storage_error(self._what, self._url, exc) from None

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        try:
            return self._fh.seek(offset, whence)
        except OSError as exc:
            raise _storage_error(self._what, self._url, exc) from None


@contextmanager
def _reading(lake: Lake, rel: str) -> Iterator[_Guarded]:
    url = lake.url(rel)
    try:
        fh = lake.open_read(rel)
    except OSError as exc:
        raise _storage_error("cannot read the CRM snapshot", url, exc) from None
    try:
        yield _Guarded(fh, url, "cannot read the CRM snapshot")
    finally:
        fh.close()


@contextmanager
def _writing(lake: Lake, rel: str) -> Iterator[_Guarded]:
    url = lake.url(rel)
    what = "cannot write the CRM quarantine"
    try:
        with lake.open_write(rel) as fh:
            yield _Guarded(fh, url, what)
    except OSError as exc:
        raise _storage_error(what, url, exc) from None


def _storage_error(what: str, url: str, exc: OSError) -> StorageError:
    """One line naming the path and the cause, e.g. ``... : No space left on device (ENOSPC)``."""
    cause = exc.strerror or type(exc).__name__
    if exc.errno is not None and exc.errno in errno.errorcode:
        cause = f"{cause} ({errno.errorcode[exc.errno]})"
    return StorageError(f"{what} {url}: {cause}")
