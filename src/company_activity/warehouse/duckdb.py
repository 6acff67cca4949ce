"""The embedded DuckDB warehouse (the default): one file on disk.

Concurrency: DuckDB lets one process at a time open the file read-write, so a second process waits in the
constructor (up to ``lock_timeout``) and then gives up with WarehouseBusyError. The run lock of
:meth:`Warehouse.lock` is, in addition, an exclusive ``flock`` on ``<file>.lock`` next to the database, so
that both engines behave alike whatever opened the file; the operating system drops it when the process
dies. The lock file is never deleted (deleting lock files races).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import duckdb

from ..errors import ConfigError, StorageError, WarehouseBusyError, WarehouseError
from ..sql import qualified, quote_ident
from . import _PARAM, Params, Row, Warehouse

#: the folder of a DuckDB warehouse's temporary files, next to the database file
TMP_DIR_NAME = ".company-activity-tmp"


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"
    key_indexes = False  # ART indexes must fit in memory and slow bulk loads; keys hold by construction

    def __init__(
        self,
        path: str,
        *,
        lock_timeout: float = 60.0,
        memory_limit: str | None = None,
        tmp_dir: str | None = None,
        read_only: bool = False,
    ):
        self.location = path
        in_memory = path in ("", ":memory:") or path.startswith(":memory:")
        #: where bulk loads write their temporary files: given, else next to the database file (the system
        #: temporary folder for an in-memory database)
        self.tmp_dir = tmp_dir or (
            tempfile.gettempdir()
            if in_memory
            else os.path.join(os.path.dirname(os.path.abspath(path)), TMP_DIR_NAME)
        )
        self.lock_timeout = lock_timeout
        self.read_only = read_only
        config: dict[str, str | bool | int | float | list[str]] = (
            {"memory_limit": _memory_size(memory_limit)} if memory_limit else {}
        )
        if read_only:
            # a reader never creates anything: no folder, no file
            if os.path.isdir(path):
                raise StorageError(f"warehouse {path} is a directory, not a DuckDB file", path=path)
            if not os.path.isfile(path):
                raise WarehouseError(f"no warehouse at {path} (nothing has run against it yet)")
            config["access_mode"] = "READ_ONLY"
        else:
            parent = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"COMPANY_ACTIVITY_WAREHOUSE: cannot create folder {parent}: {exc}"
                ) from None
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                self.con = duckdb.connect(path, config=config)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise WarehouseError(f"cannot open DuckDB warehouse {path}: {exc}") from None
                if time.monotonic() >= deadline:
                    pid = re.search(r"PID (\d+)", str(exc))
                    holder = f"DuckDB file held by pid {pid.group(1)}" if pid else "DuckDB file in use"
                    raise WarehouseBusyError(self.busy_message(lock_timeout, holder)) from None
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        self.con.execute("set timezone = 'UTC'")
        if read_only:
            return
        # inserts need not keep their input order: less memory and parallel writes for the big loads
        self.con.execute("set preserve_insertion_order = false")

    def _execute(self, statement: str, params: Params) -> list[Row] | None:
        sql = _PARAM.sub(r"$\1", statement)
        cur = self.con.execute(sql, dict(params)) if params else self.con.execute(sql)
        if cur.description is None:
            return None
        return cur.fetchall()

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows`` through a temporary CSV file read back with its dialect stated, never sniffed.

        Python's csv module writes the file (RFC 4180: every value quoted, a quote doubled, LF row ends,
        UTF-8) and DuckDB reads it with exactly that dialect: ``auto_detect = false``, every column named
        and read as VARCHAR (the target column's type converts it, as an ``insert`` does). A last column
        marks the NULLs (``1`` for each None), so a NULL is never confused with an empty string. So every
        character a value may hold (CR, LF, quotes, commas, any Unicode) is stored as given. The rows
        read back must be the rows written, or the load fails. Memory holds one row at a time; the file
        lives in :attr:`tmp_dir` and is deleted at once.
        """
        width = len(columns)
        os.makedirs(self.tmp_dir, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"bulk-{os.getpid()}-", suffix=".csv", dir=self.tmp_dir)
        count = 0
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_ALL)
                for row in rows:
                    if len(row) != width:
                        raise ValueError(f"bulk_insert into {table}: a row has {len(row)} values for {width}")
                    writer.writerow((*row, "".join(["1" if v is None else "0" for v in row])))
                    count += 1
            if count:
                target = qualified(*table.split("."))
                names = ", ".join(quote_ident(c) for c in columns)
                types = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width + 1))
                picked = ", ".join(
                    f"case when substr(c{width}, {i + 1}, 1) = '1' then null else c{i} end"
                    for i in range(width)
                )
                read = self.con.execute(
                    f"insert into {target} ({names}) select {picked} from read_csv($path, "  # noqa: S608
                    "auto_detect = false, header = false, delim = ',', quote = '\"', escape = '\"', "
                    "new_line = '\\n', strict_mode = true, allow_quoted_nulls = false, "
                    f"encoding = 'utf-8', columns = {{{types}}})",
                    {"path": path},
                ).fetchall()
                if read and read[0][0] != count:
                    raise WarehouseError(f"bulk load into {table}: wrote {count} rows but read {read[0][0]}")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return count

    def _acquire_lock(self, timeout: float) -> Callable[[], None]:
        if self.location in ("", ":memory:") or self.location.startswith(":memory:"):
            return lambda: None  # an in-memory database belongs to this process alone
        path = f"{os.path.abspath(self.location)}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                        raise WarehouseBusyError(
                            self.busy_message(timeout, f"lock file {path}, pid {holder}" if holder else None)
                        ) from None
                    time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except BaseException:
            os.close(fd)
            raise

        def release() -> None:
            try:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

        return release

    def begin(self) -> None:
        self.con.execute("begin transaction")

    def commit(self) -> None:
        self.con.execute("commit")

    def rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self.con.execute("rollback")

    def close(self) -> None:
        self.con.close()


def _memory_size(value: str) -> str:
    """A DuckDB memory size such as ``3GB`` or ``512MB``; anything else is a ConfigError."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value.strip(), re.IGNORECASE):
        raise ConfigError(f"COMPANY_ACTIVITY_DUCKDB_MEMORY_LIMIT={value!r} is not a size like 3GB or 512MB")
    return value.strip()
