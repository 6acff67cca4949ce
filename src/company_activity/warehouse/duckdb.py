"""The embedded DuckDB warehouse (the default): one file on disk."""

from __future__ import annotations

import csv
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb

from ..errors import ConfigError, WarehouseBusyError, WarehouseError
from . import Params, Row, Warehouse, _PARAM


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, path: str, *, lock_timeout: float = 60.0):
        self.location = path
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"COMPANY_ACTIVITY_WAREHOUSE: cannot create folder {parent}: {exc}") from None
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                self.con = duckdb.connect(path)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise WarehouseError(f"cannot open DuckDB warehouse {path}: {exc}") from None
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"DuckDB warehouse {path} is in use by another process "
                        f"(waited {lock_timeout:g}s); try again when it has finished"
                    ) from None
                time.sleep(0.5)
        self.con.execute("set timezone = 'UTC'")

    def _execute(self, statement: str, params: Params) -> list[Row] | None:
        sql = _PARAM.sub(r"$\1", statement)
        cur = self.con.execute(sql, dict(params)) if params else self.con.execute(sql)
        if cur.description is None:
            return None
        return cur.fetchall()

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        fd, path = tempfile.mkstemp(prefix="company-activity-", suffix=".csv")
        count = 0
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                for row in rows:
                    writer.writerow(row)
                    count += 1
            if count:
                cols = ", ".join(f'"{c}"' for c in columns)
                self.con.execute(
                    f"insert into {table} ({cols}) select * from read_csv($path, header = false, "  # noqa: S608
                    "all_varchar = true, quote = '\"', escape = '\"', delim = ',', "
                    f"columns = {{{', '.join(repr(c) + ': ' + repr('varchar') for c in columns)}}})",
                    {"path": path},
                )
        finally:
            os.unlink(path)
        return count

    def begin(self) -> None:
        self.con.execute("begin transaction")

    def commit(self) -> None:
        self.con.execute("commit")

    def rollback(self) -> None:
        try:
            self.con.execute("rollback")
        except duckdb.Error:
            pass

    def close(self) -> None:
        self.con.close()
