"""The PostgreSQL warehouse (e.g. Azure Database for PostgreSQL), through psycopg 3.

- The same ``sql/*.sql`` files as DuckDB: ``:name`` parameters become ``%(name)s`` and a literal ``%`` is
  doubled; string literals, quoted identifiers and comments are left alone.
- Transactions are explicit: the connection is not in autocommit mode, :meth:`commit` / :meth:`rollback`
  end what the first statement began. A statement run outside of :meth:`Warehouse.transaction` commits on
  its own (as on DuckDB).
- Bulk loads use ``COPY ... FROM STDIN``, never row-by-row inserts.
- The session time zone is UTC; timestamps are naive UTC, as everywhere in the warehouse.
- A temporary table made by ``create temporary table NAME as select ...`` is ANALYZEd at once: autovacuum
  never sees temporary tables, and without statistics the planner guesses their size (about 2,500 rows)
  and picks plans that read all of staging's history instead of the days at hand.
- Server settings are the server's own, but one: JIT compilation is off for the session (``set jit =
  off``), unless ``jit`` was chosen for this connection (the URL's ``options``, ``PGOPTIONS``), its role
  or its database. The build's statements are planned once and run once on
  millions of rows, so PostgreSQL JIT-compiles each (about 0.9 s apiece here) for no gain: the nightly
  candidate at 200k companies took 4.1 s with it and 3.2 s without. Other settings go in the URL, e.g.
  ``postgresql://…/wh?options=-c%20work_mem%3D256MB``.
- The run lock is a session-level advisory lock (:data:`LOCK_KEY`) taken on a dedicated connection and
  polled until ``timeout``; the server drops it when the holding process dies or its connection closes.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql as pgsql

from ..errors import WarehouseBusyError, WarehouseError
from . import _PARAM, Params, Row, Warehouse

#: the advisory-lock key of a company-activity run (one warehouse = one database; the key is per database)
LOCK_KEY = int.from_bytes(b"co-activ", "big")  # 7164995428473399670

_CREATE_TEMP_AS = re.compile(
    r"^\s*create\s+(?:temporary|temp)\s+table\s+([a-z_][a-z0-9_]*)\s+as\b", re.IGNORECASE
)
_LITERAL = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|--[^\n]*")

#: where a setting was chosen for this connection, its role or its database (``pg_settings.source``):
#: such a ``jit`` is left as it is
_CHOSEN = frozenset({"client", "database", "user", "database user", "session"})

#: how long to wait between two tries of the advisory lock
_LOCK_POLL = 0.2


@lru_cache(maxsize=512)
def to_pyformat(statement: str) -> str:
    """``:name`` -> ``%(name)s`` and ``%`` -> ``%%``, outside string literals, quoted names and comments."""
    out: list[str] = []
    pos = 0
    for m in _LITERAL.finditer(statement):
        out.append(_PARAM.sub(r"%(\1)s", statement[pos : m.start()].replace("%", "%%")))
        out.append(m.group(0).replace("%", "%%"))
        pos = m.end()
    out.append(_PARAM.sub(r"%(\1)s", statement[pos:].replace("%", "%%")))
    return "".join(out)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://…"
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(query=query))


class PostgresWarehouse(Warehouse):
    dialect = "postgresql"

    def __init__(self, url: str, *, lock_timeout: float = 60.0, read_only: bool = False):
        self.url = url
        self.location = redact(url)
        self.lock_timeout = lock_timeout
        self.read_only = read_only
        self.con = self._connect(autocommit=False)
        self.con.execute("set time zone 'UTC'")
        row = self.con.execute("select source from pg_settings where name = 'jit'").fetchone()
        if row is not None and row[0] not in _CHOSEN:  # no jit before PostgreSQL 11
            self.con.execute("set jit = off")
        self.con.commit()

    def _connect(self, *, autocommit: bool) -> psycopg.Connection[Any]:
        # the application name tells who holds the run lock: this process and its host
        name = f"company-activity pid {os.getpid()} on {socket.gethostname()}"[:63]
        extra: dict[str, Any] = {"application_name": name}
        if self.read_only:
            extra["options"] = "-c default_transaction_read_only=on"
        if "connect_timeout" not in self.url:
            extra["connect_timeout"] = 15
        try:
            return psycopg.connect(self.url, autocommit=autocommit, **extra)
        except psycopg.Error as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WarehouseError(
                f"cannot connect to the PostgreSQL warehouse {self.location}: {detail}"
            ) from None

    # -- primitives -----------------------------------------------------------------------------------
    def _execute(self, statement: str, params: Params) -> list[Row] | None:
        try:
            with self.con.cursor() as cur:
                cur.execute(to_pyformat(statement), dict(params))
                rows = cur.fetchall() if cur.description is not None else None
                created = _CREATE_TEMP_AS.match(statement)
                if created:
                    cur.execute(pgsql.SQL("analyze {}").format(pgsql.Identifier(created.group(1))))
        except BaseException:
            if not self._depth:
                self._rollback_quietly()
            raise
        if not self._depth:
            self.con.commit()
        return rows

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        copy_sql = pgsql.SQL("copy {} ({}) from stdin").format(
            pgsql.Identifier(*table.split(".")),
            pgsql.SQL(", ").join(pgsql.Identifier(c) for c in columns),
        )
        count = 0
        try:
            with self.con.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        except BaseException:
            if not self._depth:
                self._rollback_quietly()
            raise
        if not self._depth:
            self.con.commit()
        return count

    def begin(self) -> None:
        # psycopg opens the transaction with the first statement; there must be none open now
        if self.con.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._rollback_quietly()

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self._rollback_quietly()

    def _rollback_quietly(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.con.rollback()

    def close(self) -> None:
        if not self.con.closed:
            self._rollback_quietly()
            self.con.close()

    # -- the run lock -----------------------------------------------------------------------------------
    def _acquire_lock(self, timeout: float) -> Callable[[], None]:
        con = self._connect(autocommit=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                row = con.execute("select pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
                if row is not None and row[0]:
                    break
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(self.busy_message(timeout, _holder(con)))
                time.sleep(min(_LOCK_POLL, max(0.0, deadline - time.monotonic())))
        except BaseException:
            con.close()
            raise

        def release() -> None:
            try:
                con.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
            except psycopg.Error:
                pass  # the connection is gone: so is the lock
            finally:
                con.close()

        return release


def _holder(con: psycopg.Connection[Any]) -> str | None:
    """Who holds the run lock: its application name, client address and since when (best effort)."""
    try:
        row = con.execute(
            "select coalesce(nullif(a.application_name, ''), 'PostgreSQL backend pid ' || a.pid), "
            "coalesce(host(a.client_addr), 'a local socket'), "
            "to_char(a.backend_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
            "from pg_locks as l join pg_stat_activity as a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted and l.database = "
            "(select oid from pg_database where datname = current_database()) "
            "and ((l.classid::bigint << 32) | l.objid::bigint) = %s limit 1",
            (LOCK_KEY,),
        ).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return f"held by {row[0]}, connected from {row[1]} since {row[2]} UTC"
