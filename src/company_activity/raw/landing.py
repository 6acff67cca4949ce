"""Usage ingestion helpers: raw pages to the lake as they arrive, validated once, spooled, bulk-loaded.

The usage step (:mod:`company_activity.steps.ingest_usage`) hands each page of a day to a
:class:`RawLanding`. Its writer thread writes the page to the lake exactly as received, computes its
checksum and validates its records against the contract while the fetching thread already waits for the
next page. The validated records go to a local spool file (CSV, a page at a time) in the project's own
temporary folder (``tmp_dir``, setting ``COMPANY_ACTIVITY_TMP_DIR``), so memory does not grow with the
number of pages; :func:`sweep_stale_spools` removes what killed runs left there. When the last page is
durable, the manifest is written (last), and the day's :class:`StagedDay` travels with it
(:class:`Manifest`) to the data engine's ``replace_usage_day``, which bulk-loads the spool into staging in one
transaction: DuckDB reads the spool file itself, with no Python per record; other engines get
the rows streamed to their bulk load.

A manifest without a spool (``replay``, or a raw run of an earlier process) is staged from the lake
(:func:`stage_from_lake`): each page is read back, its checksum verified against the manifest, validated.

A record that breaks the contract does not stop the landing (the raw run is completed, with its manifest,
for inspection and replay); it is kept as :attr:`StagedDay.error` and the load refuses the day. A record
that keeps the contract but breaks one of the project's own limits is quarantined instead
(:mod:`.quarantine`, ``docs/usage-api-policy.md``): it is left out of the spool, and ``_quarantine.json``
beside the pages (written before the manifest) names its page, index and reason; the usage step decides
whether the rest of the day is published. A replay stages the same records again and quarantines the same.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import hashlib
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import IO, Any

import orjson

from ..errors import StorageError, UsageDataError
from ..sources.usage import Page, parse_usage_doc, parse_usage_page
from ..sources.usage.contract import QUARANTINE_MAX_FRACTION
from ..storage import Lake
from .quarantine import QUARANTINE_FILE, DayQuarantine, document, page_number

__all__ = [
    "LandedRun",
    "RawLanding",
    "StagedDay",
    "land_day",
    "latest_raw_run",
    "stage_from_lake",
    "sweep_stale_spools",
]

#: pages waiting for the writer thread at most (bounds memory while the lake is slower than the API)
QUEUE_DEPTH = 8

# The spool is CSV: '"<company_id>",<active_users>,<events>' per record, the id quoted with '"' doubled
# (DuckDB reads it itself: ``sql/duckdb_spool.sql``).
_CSV_LINE = '"{}",{},{}\n'.format


#: the spool files' names: ``company-activity-usage-<day>-<pid>-<random>.csv`` in the spool folder
SPOOL_PREFIX = "company-activity-usage-"
#: a spool older than this is swept whatever its owner (a process id can be reused)
STALE_SPOOL_SECONDS = 24 * 3600
_SPOOL_PID = re.compile(r"company-activity-usage-\d{4}-\d{2}-\d{2}-(\d+)-")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def sweep_stale_spools(
    tmp_dir: str | os.PathLike[str] | None = None, max_age: float = STALE_SPOOL_SECONDS
) -> int:
    """Delete the spools that killed runs left in ``tmp_dir``; returns how many.

    A spool is stale when the process that made it (its name carries the pid) is gone, or when it is older
    than ``max_age`` seconds. ``tmp_dir`` None: the system temporary folder (where older releases spooled).
    Runs call this at their start; a missing folder sweeps nothing.
    """
    folder = os.fspath(tmp_dir) if tmp_dir is not None else tempfile.gettempdir()
    cutoff = time.time() - max_age
    removed = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not (entry.name.startswith(SPOOL_PREFIX) and entry.name.endswith(".csv")):
                continue
            match = _SPOOL_PID.match(entry.name)
            with contextlib.suppress(OSError):
                dead = match is not None and not _alive(int(match.group(1)))
                if dead or entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
    return removed


class StagedDay:
    """The validated records of one day's raw run, spooled to a local file until staging loads them."""

    def __init__(self, day: date, tmp_dir: str | os.PathLike[str] | None = None) -> None:
        self.day = day
        self.tmp_dir = tmp_dir
        self.records = 0  # records spooled (repeats included): the accepted ones
        #: the records kept out for the project's own limits (page, index, reason)
        self.quarantine = DayQuarantine()
        #: extra field -> where it first appears in this raw run ("page-00001.json record 0")
        self.drift: dict[str, str] = {}
        #: the first contract violation; when set, the day must not be loaded
        self.error: UsageDataError | None = None
        self._path: str | None = None
        self._fh: IO[bytes] | None = None

    @property
    def path(self) -> str | None:
        """The spool file (None when no record was spooled)."""
        return self._path

    def add(self, name: str, source: str, *, doc: Any = None, body: bytes | None = None) -> None:
        """Validate one page (decoded ``doc``, or its raw ``body``) and spool its accepted records; the
        records over the project's own limits go to :attr:`quarantine`."""
        if self.error is not None:
            return  # the day is refused already; the rest is landed for inspection only
        try:
            if doc is None:
                parsed = parse_usage_page(body or b"", day=self.day, source=source, quarantine=True)
            else:
                parsed = parse_usage_doc(doc, day=self.day, source=source, quarantine=True)
        except UsageDataError as exc:
            self.error = exc
            self.discard()
            return
        for field in sorted(parsed.extra_fields):
            self.drift.setdefault(field, f"{name} record {parsed.first_extra.get(field, 0)}")
        if parsed.quarantined:
            self.quarantine.add(page_number(name), name, parsed.quarantined)
        if not len(parsed):
            return
        if self._fh is None:
            folder = None if self.tmp_dir is None else os.fspath(self.tmp_dir)
            try:
                if folder is not None:
                    os.makedirs(folder, exist_ok=True)
                fd, self._path = tempfile.mkstemp(
                    prefix=f"{SPOOL_PREFIX}{self.day}-{os.getpid()}-", suffix=".csv", dir=folder
                )
            except OSError as exc:
                where = folder or tempfile.gettempdir()
                raise StorageError(
                    f"cannot create a usage spool file for {self.day} in {where}: "
                    f"{exc.strerror or type(exc).__name__} (COMPANY_ACTIVITY_TMP_DIR)",
                    path=where,
                ) from None
            self._fh = os.fdopen(fd, "wb")
        ids = parsed.company_ids
        if '"' in "".join(ids):
            ids = [cid.replace('"', '""') for cid in ids]
        # every id quoted (commas, newlines and spaces are then data), counts bare: one C-level pass
        self._fh.write("".join(map(_CSV_LINE, ids, parsed.active_users, parsed.events)).encode())
        self.records += len(parsed)

    def close(self) -> None:
        """Finish writing the spool (it can be loaded from now on)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def settle(self) -> None:
        """After the last page: close the spool, and refuse the day (:attr:`error`) when a quarantined
        record's company also has a different record on the day (the spec's one-record rule)."""
        self.close()
        if self.error is None and len(self.quarantine):
            clashes = self.quarantine.clashing(self.rows())
            if clashes:
                self.error = UsageDataError(
                    f"different records for one company ({', '.join(clashes)}), one of them quarantined "
                    "for the project's own limits"
                )
                self.discard()

    def rows(self) -> Iterator[tuple[str, int, int]]:
        """The spooled records, ``(company_id, active_users, events)``, streamed from the file."""
        self.close()
        if self._path is None:
            return
        with open(self._path, encoding="utf-8", newline="") as fh:
            for cid, users, events in csv.reader(fh, strict=True):
                yield cid, int(users), int(events)

    def discard(self) -> None:
        """Delete the spool. Safe to call twice."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._path = None


@dataclass
class LandedRun:
    """One complete raw run of a day in the lake: its folder, its manifest (as written), and the spool
    of its validated records when this process landed it (``None`` for a run read back for replay)."""

    day: date
    prefix: str
    manifest: dict[str, Any]
    staged: StagedDay | None = None

    @property
    def raw_run_id(self) -> str:
        return str(self.manifest["run_id"])

    @property
    def page_count(self) -> int:
        return int(self.manifest["page_count"])

    @property
    def quarantine_file(self) -> str | None:
        """The lake path of the run's ``_quarantine.json`` (None when the run quarantined nothing)."""
        entry = self.manifest.get("quarantine")
        return f"{self.prefix}/{entry['file']}" if isinstance(entry, dict) and "file" in entry else None

    def discard(self) -> None:
        if self.staged is not None:
            self.staged.discard()


def land_day(
    lake: Lake,
    pages: Iterable[Page],
    day: date,
    run_id: str,
    *,
    page_size: int,
    tmp_dir: str | os.PathLike[str] | None = None,
    check: Callable[[], None] = lambda: None,
) -> LandedRun:
    """Land every page of ``day`` in the lake, then write the manifest (last); ``check`` is called before
    each page (a stop). A failure (or a kill) before the end leaves the pages written so far without a
    manifest: nothing ever reads them."""
    prefix = f"raw/product_usage/date={day.isoformat()}/run={run_id}"
    started = datetime.now(UTC)
    landing = RawLanding(lake, prefix, day, tmp_dir=tmp_dir)
    try:
        for page in pages:
            check()
            landing.add(page)
        entries, staged = landing.finish()
    except BaseException:
        landing.abort()
        raise
    manifest: dict[str, Any] = {
        "date": day.isoformat(),
        "run_id": run_id,
        "pages": entries,
        "page_count": len(entries),
        "record_count": sum(int(p["records"]) for p in entries),
        "request": {"endpoint": "/v1/usage/daily", "date": day.isoformat(), "limit": page_size},
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
    }
    try:
        if len(staged.quarantine) and staged.error is None:  # before the manifest: complete runs have it
            data = document(
                staged.quarantine, day, run_id, accepted=staged.records, max_fraction=QUARANTINE_MAX_FRACTION
            )
            lake.write_bytes(f"{prefix}/{QUARANTINE_FILE}", data)
            manifest["quarantine"] = {
                "file": QUARANTINE_FILE,
                "records": len(staged.quarantine),
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
        lake.write_bytes(f"{prefix}/_manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    except BaseException:
        staged.discard()
        raise
    return LandedRun(day, prefix, manifest, staged)


def latest_raw_run(lake: Lake, day: date) -> LandedRun:
    """The newest complete raw run of ``day`` in the lake (one with a manifest)."""
    folder = f"raw/product_usage/date={day.isoformat()}"
    for name in reversed(lake.list_dirs(folder)):
        prefix = f"{folder}/{name}"
        if lake.exists(f"{prefix}/_manifest.json"):
            return LandedRun(day, prefix, orjson.loads(lake.read_bytes(f"{prefix}/_manifest.json")))
    raise UsageDataError(
        f"no complete raw run for {day.isoformat()} under {lake.url(folder)}: nothing to replay"
    )


class RawLanding:
    """Writes the pages of one raw run to the lake in a writer thread, and stages their records.

    ``add`` queues a page (blocking when :data:`QUEUE_DEPTH` pages wait, so memory stays bounded) and
    re-raises a failure of the writer (the lake refusing a write) at once. ``finish`` waits until every
    page is written and returns the manifest's page entries and the :class:`StagedDay`; ``abort`` stops
    and deletes the spool. Pages written before an abort stay in the lake: without a manifest, nothing
    ever reads them.
    """

    def __init__(
        self, lake: Lake, prefix: str, day: date, *, tmp_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.lake = lake
        self.prefix = prefix
        self.staged = StagedDay(day, tmp_dir)
        self.entries: list[dict[str, Any]] = []
        self._queue: queue.Queue[Page | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._failure: BaseException | None = None
        self._stopped = False
        context = contextvars.copy_context()  # the log context (run, day, step) of the fetching thread
        self._thread = threading.Thread(
            target=context.run, args=(self._work,), name=f"land-{day.isoformat()}", daemon=True
        )
        self._thread.start()

    def add(self, page: Page) -> None:
        if self._failure is not None:
            raise self._failure
        self._queue.put(page)

    def finish(self) -> tuple[list[dict[str, Any]], StagedDay]:
        self._stop()
        if self._failure is not None:
            self.staged.discard()
            raise self._failure
        self.staged.settle()
        return self.entries, self.staged

    def abort(self) -> None:
        self._stop()
        self.staged.discard()

    def _stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
            self._thread.join()

    def _work(self) -> None:
        while True:
            page = self._queue.get()
            if page is None:
                return
            if self._failure is not None:
                continue  # drain, so that add() never blocks on a dead writer
            try:
                self._land(page)
            except BaseException as exc:  # handed to the fetching thread by add() / finish()
                self._failure = exc

    def _land(self, page: Page) -> None:
        name = f"page-{page.number:05d}.json"
        rel = f"{self.prefix}/{name}"
        self.lake.write_bytes(rel, page.body)
        self.entries.append(
            {
                "file": name,
                "sha256": hashlib.sha256(page.body).hexdigest(),
                "bytes": len(page.body),
                "records": page.record_count,
                "cursor": page.cursor,
                "next_cursor": page.next_cursor,
                "fetched_at": page.fetched_at.isoformat(),
            }
        )
        self.staged.add(name, self.lake.url(rel), doc=page.doc, body=page.body)


def stage_from_lake(
    lake: Lake,
    prefix: str,
    manifest: dict[str, Any],
    day: date,
    *,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> StagedDay:
    """Stage a complete raw run from the lake: read each page, verify its checksum, validate it (the
    records over the project's own limits are quarantined again, as when the run was landed)."""
    staged = StagedDay(day, tmp_dir)
    try:
        for page in manifest["pages"]:
            rel = f"{prefix}/{page['file']}"
            body = lake.read_bytes(rel)
            if hashlib.sha256(body).hexdigest() != page["sha256"]:
                raise UsageDataError(f"raw page {lake.url(rel)} does not match its manifest checksum")
            staged.add(str(page["file"]), lake.url(rel), body=body)
            if staged.error is not None:
                break
        staged.settle()
    except BaseException:
        staged.discard()
        raise
    return staged
