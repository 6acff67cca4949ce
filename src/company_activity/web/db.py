"""Read-only connections to the warehouse for the web UI, one per request.

- DuckDB: the file is opened with ``read_only=True`` for the request and closed after it, so the UI never
  keeps the nightly run from opening it read-write. While a run holds the file, pages answer 503 ("a run
  is writing; try again") instead of waiting.
- PostgreSQL: a connection whose transactions are read-only (``default_transaction_read_only``), time
  zone UTC.

Queries are the named queries of ``sql/ui.sql`` (and a few of ``ops.sql``), values bound as parameters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .. import sql as sqlfiles
from ..warehouse import _PARAM, param_names

if TYPE_CHECKING:
    from ..config import Settings


class WarehouseUnavailable(Exception):
    """The warehouse cannot be read now (missing, busy, unreachable, too old): a 503 with this message."""


class Session:
    """One read-only connection: named queries in, rows as dicts out."""

    def __init__(self, con: Any, dialect: str):
        self._con = con
        self.dialect = dialect

    def rows(self, filename: str, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for statement in sqlfiles.query(filename, name):
            result = self._execute(statement, params or {})
        return result

    def one(self, filename: str, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        rows = self.rows(filename, name, params)
        return rows[0] if rows else None

    def _execute(self, statement: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        bound = {n: params[n] for n in param_names(statement)}
        if self.dialect == "duckdb":
            cur = (
                self._con.execute(_PARAM.sub(r"$\1", statement), bound)
                if bound
                else self._con.execute(statement)
            )
            if cur.description is None:
                return []
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        from ..warehouse.postgres import to_pyformat

        with self._con.cursor() as pcur:
            pcur.execute(to_pyformat(statement), bound)
            if pcur.description is None:
                return []
            cols = [d.name for d in pcur.description]
            return [dict(zip(cols, r, strict=True)) for r in pcur.fetchall()]


class Reader:
    """Opens read-only sessions on the warehouse named by ``url`` (a DuckDB path or postgresql://)."""

    def __init__(self, url: str, *, spark_root: str | None = None):
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self.path = "" if self.postgres else url.removeprefix("duckdb:")
        #: issue 13: ``url`` is the run-state file and the data is in the Parquet tables under this root
        self.spark_root = spark_root

    @contextmanager
    def session(self) -> Iterator[Session]:
        if self.postgres:
            with self._postgres() as s:
                yield s
        else:
            with self._duckdb() as s:
                yield s

    @contextmanager
    def _duckdb(self) -> Iterator[Session]:
        import duckdb

        if not os.path.exists(self.path):
            raise WarehouseUnavailable(
                f"no warehouse at {self.path}: run `company-activity demo` or `company-activity run` first"
            )
        try:
            if self.spark_root is not None:  # issue 13: the state file + the Parquet tables
                from ..warehouse.spark.duckdb_views import attach

                con = duckdb.connect(":memory:")
                attach(con, self.path, self.spark_root)
            else:
                con = duckdb.connect(self.path, read_only=True)
        except duckdb.Error as exc:
            if "lock" in str(exc).lower():
                raise WarehouseUnavailable(
                    "a pipeline run is writing to the warehouse right now; reload in a moment"
                ) from None
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise WarehouseUnavailable(f"cannot open the DuckDB warehouse {self.path}: {reason}") from None
        try:
            con.execute("set timezone = 'UTC'")
            yield Session(con, "duckdb")
        except duckdb.CatalogException:
            raise WarehouseUnavailable(_TOO_OLD) from None
        finally:
            con.close()

    @contextmanager
    def _postgres(self) -> Iterator[Session]:
        import psycopg

        from ..warehouse.postgres import redact

        try:
            con = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=10,
                application_name="company-activity web UI",
            )
            con.execute("set default_transaction_read_only = on")
            con.execute("set time zone 'UTC'")
        except psycopg.Error:
            raise WarehouseUnavailable(f"cannot connect to the warehouse {redact(self.url)}") from None
        try:
            yield Session(con, "postgresql")
        except psycopg.errors.UndefinedTable:
            raise WarehouseUnavailable(_TOO_OLD) from None
        finally:
            con.close()


_TOO_OLD = (
    "the warehouse has no web UI tables yet (an older schema): run `company-activity init` to migrate it"
)


def reader_for(settings: Settings) -> Reader:
    """The UI's reader of the configured warehouse (``spark:ROOT``: the state file and ROOT's Parquet)."""
    from ..warehouse.spark import parse_root

    return Reader(settings.run_state, spark_root=parse_root(settings.warehouse))
