"""The embedded DuckDB warehouse (the default): one file on disk.

Concurrency: DuckDB lets one process at a time open the file read-write, so a second process waits in the
constructor (up to ``lock_timeout``) and then gives up with WarehouseBusyError. The run lock of
:meth:`Warehouse.lock` is, in addition, an exclusive ``flock`` on ``<file>.lock`` next to the database, so
that both engines behave alike whatever opened the file; the operating system drops it when the process
dies. The lock file is never deleted (deleting lock files races).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import duckdb

from ..errors import ConfigError, WarehouseBusyError, WarehouseError
from . import _PARAM, Params, Row, Warehouse

#: rows per statement of :meth:`DuckDBWarehouse.bulk_insert`
BULK_CHUNK = 20_000


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"
    key_indexes = False  # ART indexes must fit in memory and slow bulk loads; keys hold by construction

    def __init__(self, path: str, *, lock_timeout: float = 60.0, memory_limit: str | None = None):
        self.location = path
        self.lock_timeout = lock_timeout
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"COMPANY_ACTIVITY_WAREHOUSE: cannot create folder {parent}: {exc}") from None
        config: dict[str, str | bool | int | float | list[str]] = (
            {"memory_limit": _memory_size(memory_limit)} if memory_limit else {}
        )
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
        # inserts need not keep their input order: less memory and parallel writes for the big loads
        self.con.execute("set preserve_insertion_order = false")

    def _execute(self, statement: str, params: Params) -> list[Row] | None:
        sql = _PARAM.sub(r"$\1", statement)
        cur = self.con.execute(sql, dict(params)) if params else self.con.execute(sql)
        if cur.description is None:
            return None
        return cur.fetchall()

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows`` in chunks of :data:`BULK_CHUNK`, each one statement binding one list per column.

        No file and no CSV: values reach DuckDB as bound Python values, so every character (CR, LF,
        quotes, commas, any Unicode) is stored as given, with nothing to sniff or guess; the target
        columns' types convert them as an ``insert`` does. Memory holds one chunk.
        """
        names = ", ".join(f'"{c}"' for c in columns)
        values = ", ".join(f"unnest(${i + 1})" for i in range(len(columns)))
        statement = f"insert into {table} ({names}) select {values}"
        count = 0
        chunk: list[Sequence[Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= BULK_CHUNK:
                count += self._insert_chunk(statement, chunk, len(columns))
                chunk = []
        if chunk:
            count += self._insert_chunk(statement, chunk, len(columns))
        return count

    def _insert_chunk(self, statement: str, chunk: list[Sequence[Any]], width: int) -> int:
        for row in chunk:
            if len(row) != width:
                raise ValueError(f"bulk_insert: a row has {len(row)} values for {width} columns")
        self.con.execute(statement, [list(column) for column in zip(*chunk, strict=True)])
        return len(chunk)

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
