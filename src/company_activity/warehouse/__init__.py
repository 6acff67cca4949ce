"""The warehouse: one small interface over DuckDB and PostgreSQL.

Both engines run the same files from :mod:`company_activity.sql`; parameters are written ``:name`` and
bound by the driver. Only bulk loading differs (a CSV scan for DuckDB, ``COPY`` for PostgreSQL), and how
the per-warehouse run lock is held (a lock file for DuckDB, an advisory lock for PostgreSQL).

Transactions: :meth:`Warehouse.transaction` groups statements; a statement run outside of one commits on
its own, on both engines.
"""

from __future__ import annotations

import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .. import sql as sqlfiles
from ..clock import utcnow
from ..errors import ConfigError, WarehouseError
from . import migrations

Params = Mapping[str, Any]
Row = tuple[Any, ...]

_PARAM = re.compile(r"(?<![:\w]):([a-zA-Z_][a-zA-Z0-9_]*)")

#: the schema version this release brings a warehouse to (see :mod:`.migrations`)
SCHEMA_VERSION = migrations.latest()

log = logging.getLogger("company_activity.warehouse")


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
    #: whether the large tables' keys are unique indexes (keys.sql); see create_tables.sql
    key_indexes: bool = True
    #: how long :meth:`init_schema` waits for the run lock when it has to create or migrate the schema
    lock_timeout: float = 60.0

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

        Waits up to ``timeout`` seconds, then raises WarehouseBusyError. Re-entrant on one connection
        object. Engines override :meth:`_acquire_lock`; the lock is released when the block ends, and by
        the operating system or the server when the process dies.
        """
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        release = self._acquire_lock(timeout)
        self._lock_depth = 1
        try:
            yield
        finally:
            self._lock_depth = 0
            release()

    def _acquire_lock(self, timeout: float) -> Callable[[], None]:
        """Take the run lock (waiting up to ``timeout`` s); returns a callable that releases it."""
        return lambda: None

    @property
    def locked(self) -> bool:
        """Whether this connection object holds the run lock now."""
        return self._lock_depth > 0

    def busy_message(self, waited: float, holder: str | None = None) -> str:
        """The message of the WarehouseBusyError raised after waiting ``waited`` seconds for the lock."""
        who = f" ({holder})" if holder else ""
        return (
            f"another company-activity run holds the lock on {self.location}{who}; waited {waited:g}s. "
            "Try again when it has finished, or raise COMPANY_ACTIVITY_LOCK_TIMEOUT"
        )

    # -- shared behaviour -----------------------------------------------------------------------------
    _depth = 0
    _lock_depth = 0

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
        if name is not None:
            _test_pause(f"{filename}:{name}")
        return result

    def scalar(self, filename: str, name: str, params: Params | None = None) -> Any:
        rows = self.run(filename, name, params)
        return rows[0][0] if rows else None

    # -- schema versions --------------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        """The version recorded in ``ops.schema_version`` (None: no schema yet). Reads only."""
        exists = self.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'ops' and table_name = 'schema_version'"
        )[0][0]
        if not exists:
            return None
        value = self.execute("select max(version) from ops.schema_version")[0][0]
        return None if value is None else int(value)

    def init_schema(self) -> list[int]:
        """Create the schema, or migrate it to this release's version; returns the versions applied.

        A warehouse already at this release's version is only read. One that is newer than this release
        raises WarehouseError and is left untouched. Creating or migrating takes the run lock (waiting up
        to :attr:`lock_timeout`), so two processes never migrate at once.
        """
        target = migrations.latest()
        current = self.schema_version()
        self._refuse_newer(current, target)
        if current == target:
            return []
        applied: list[int] = []
        with self.lock(timeout=self.lock_timeout):
            current = self.schema_version()  # again, under the lock: another process may have done it
            self._refuse_newer(current, target)
            for step in migrations.pending(current):
                with self.transaction():
                    for statement in step.sql(key_indexes=self.key_indexes):
                        self.execute(statement)
                    self.run(
                        "ops.sql", "set_schema_version", {"version": step.version, "applied_at": utcnow()}
                    )
                applied.append(step.version)
                log.info(
                    "warehouse %s: schema version %d applied (%s)",
                    self.location,
                    step.version,
                    step.description,
                )
        return applied

    def _refuse_newer(self, current: int | None, target: int) -> None:
        if current is not None and current > target:
            raise WarehouseError(
                f"warehouse {self.location} has schema version {current}, newer than this release of "
                f"company-activity supports (version {target}); it was left untouched. Upgrade "
                "company-activity to the release that created it (pip install -U company-activity)"
            )

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- test-only hook -------------------------------------------------------------------------------------
#: TEST ONLY. ``<sql file>:<query name>`` (e.g. ``staging.sql:usage_replace_day``): right after running that
#: named query, the process pauses once, inside whatever transaction is open, so that the crash and
#: concurrency tests can SIGKILL it or start a second run at a known point. Unset in production.
TEST_PAUSE_AT = "COMPANY_ACTIVITY_TEST_PAUSE_AT"
#: TEST ONLY. The file the paused process writes its pid to; it resumes when the file is deleted.
TEST_PAUSE_FILE = "COMPANY_ACTIVITY_TEST_PAUSE_FILE"
_paused_once = False


def _test_pause(point: str) -> None:
    global _paused_once
    if _paused_once or os.environ.get(TEST_PAUSE_AT) != point:
        return
    _paused_once = True
    flag = os.environ.get(TEST_PAUSE_FILE)
    if not flag:
        return
    tmp = f"{flag}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(str(os.getpid()))
    os.replace(tmp, flag)
    while os.path.exists(flag):
        time.sleep(0.02)


def connect(
    url: str,
    *,
    lock_timeout: float = 60.0,
    duckdb_memory_limit: str | None = None,
    read_only: bool = False,
) -> Warehouse:
    """Open the warehouse named by ``COMPANY_ACTIVITY_WAREHOUSE``.

    ``read_only``: for readers (``status``, ``runs``, the web UI): nothing is created or migrated, a DuckDB
    file that does not exist is a WarehouseError saying so, PostgreSQL sessions are read-only.
    """
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from .postgres import PostgresWarehouse
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "COMPANY_ACTIVITY_WAREHOUSE is a PostgreSQL URL but psycopg is not installed: "
                "pip install 'company-activity[postgres]'"
            ) from exc
        return PostgresWarehouse(url, lock_timeout=lock_timeout, read_only=read_only)
    if url.startswith("spark:"):  # issue 13: a data engine, driven by the runner, not a Warehouse
        raise ConfigError(
            "COMPANY_ACTIVITY_WAREHOUSE=spark:... names the Spark data engine (preview): it is used through "
            "company_activity.warehouse.spark.SparkEngine; the pipeline's commands do not run on it yet"
        )
    path = url.removeprefix("duckdb:")
    if "://" in path:
        raise ConfigError(
            f"COMPANY_ACTIVITY_WAREHOUSE: unsupported URL scheme in {url.split('://')[0]!r}; "
            "use a DuckDB file path or postgresql://"
        )
    from .duckdb import DuckDBWarehouse

    return DuckDBWarehouse(
        path, lock_timeout=lock_timeout, memory_limit=duckdb_memory_limit, read_only=read_only
    )
