"""The warehouse: one small interface over DuckDB and PostgreSQL.

Both engines run the same files from :mod:`company_activity.sql`; parameters are written ``:name`` and
bound by the driver. Only bulk loading differs (a CSV scan for DuckDB, ``COPY`` for PostgreSQL).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .. import sql as sqlfiles
from ..errors import ConfigError

Params = Mapping[str, Any]
Row = tuple[Any, ...]

_PARAM = re.compile(r"(?<![:\w]):([a-zA-Z_][a-zA-Z0-9_]*)")

SCHEMA_VERSION = 1


def param_names(statement: str) -> list[str]:
    """The ``:name`` parameters of a statement, in order of first use."""
    seen: dict[str, None] = {}
    for m in _PARAM.finditer(_strip_literals(statement)):
        seen.setdefault(m.group(1), None)
    return list(seen)


def _strip_literals(statement: str) -> str:
    # blank out string literals and quoted identifiers so ':x' inside them is not a parameter
    return re.sub(r"'(?:[^']|'')*'|\"[^\"]*\"|--[^\n]*", lambda m: " " * len(m.group(0)), statement)


class Warehouse(ABC):
    """A connection to the warehouse. Not thread-safe: one per thread."""

    dialect: str
    location: str

    # -- primitives each engine provides --------------------------------------------------------------
    @abstractmethod
    def _execute(self, statement: str, params: Params) -> list[Row] | None: ...

    @abstractmethod
    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Append ``rows`` to ``table`` (a trusted identifier) in bulk; returns the row count."""

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @contextmanager
    def lock(self, *, timeout: float) -> Iterator[None]:
        """Hold the per-warehouse run lock: one pipeline run at a time per warehouse.

        Waits up to ``timeout`` seconds, then raises WarehouseBusyError. Engines override this.
        """
        yield

    # -- shared behaviour -----------------------------------------------------------------------------
    _depth = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction; nested use joins the outer one. Rolls back on any exception."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.rollback()
            raise
        self._depth = 0
        self.commit()

    def execute(self, statement: str, params: Params | None = None) -> list[Row]:
        names = param_names(statement)
        given = params or {}
        missing = [n for n in names if n not in given]
        if missing:
            raise KeyError(f"SQL parameter(s) not given: {', '.join(missing)}")
        rows = self._execute(statement, {n: given[n] for n in names})
        return rows or []

    def run(self, filename: str, name: str | None = None, params: Params | None = None) -> list[Row]:
        """Run every statement of a SQL file (or of one named query in it); the last result is returned."""
        statements = (
            sqlfiles.split_statements(sqlfiles.text(filename))
            if name is None
            else sqlfiles.query(filename, name)
        )
        result: list[Row] = []
        for statement in statements:
            result = self.execute(statement, params)
        return result

    def scalar(self, filename: str, name: str, params: Params | None = None) -> Any:
        rows = self.run(filename, name, params)
        return rows[0][0] if rows else None

    def init_schema(self) -> None:
        with self.transaction():
            self.run("create_tables.sql")
            current = self.execute("select max(version) from ops.schema_version")[0][0]
            if current is None:
                self.run(
                    "ops.sql", "set_schema_version", {"version": SCHEMA_VERSION, "applied_at": _now()}
                )
            elif current > SCHEMA_VERSION:
                from ..errors import WarehouseError

                raise WarehouseError(
                    f"warehouse {self.location} has schema version {current}, newer than this release "
                    f"supports ({SCHEMA_VERSION}); upgrade company-activity"
                )

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(tzinfo=None)


def connect(url: str, *, lock_timeout: float = 60.0) -> Warehouse:
    """Open the warehouse named by ``COMPANY_ACTIVITY_WAREHOUSE``."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from .postgres import PostgresWarehouse
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "COMPANY_ACTIVITY_WAREHOUSE is a PostgreSQL URL but psycopg is not installed: "
                "pip install 'company-activity[postgres]'"
            ) from exc
        return PostgresWarehouse(url, lock_timeout=lock_timeout)
    path = url.removeprefix("duckdb:")
    if "://" in path:
        raise ConfigError(
            f"COMPANY_ACTIVITY_WAREHOUSE: unsupported URL scheme in {url.split('://')[0]!r}; "
            "use a DuckDB file path or postgresql://"
        )
    from .duckdb import DuckDBWarehouse

    return DuckDBWarehouse(path, lock_timeout=lock_timeout)
