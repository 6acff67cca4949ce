"""Locks that live with the warehouse, apart from a run's lock (``Warehouse.lock``, in the engines).

**The scheduler lock.** One ``company-activity schedule`` per warehouse: it holds this lock for its whole
life and fails at once (naming the holder) when another scheduler has it: for DuckDB an exclusive
``flock`` on ``<warehouse file>.scheduler.lock``, for PostgreSQL a session advisory lock (another key than
the run lock's) on a connection of its own. ``company-activity health`` tries it without waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator

from ..config import ENV_PREFIX
from ..errors import ConfigError, PipelineError, WarehouseBusyError

#: the advisory-lock key of a scheduler on a PostgreSQL warehouse (the run lock's is b"co-activ")
PG_SCHEDULER_LOCK_KEY = int.from_bytes(b"co-sched", "big")


class SchedulerBusyError(WarehouseBusyError):
    """Another ``company-activity schedule`` already serves this warehouse."""


# -- the scheduler lock --------------------------------------------------------------------------
@contextlib.contextmanager
def scheduler_lock(warehouse: str) -> Iterator[str]:
    """Hold the scheduler lock of ``warehouse`` (its URL or path) for the block; yields what it locked.

    Raises SchedulerBusyError at once when another scheduler holds it.
    """
    if warehouse.startswith(("postgresql://", "postgres://")):
        with _pg_scheduler_lock(warehouse) as what:
            yield what
        return
    path = warehouse.removeprefix("duckdb:")
    if path in ("", ":memory:") or path.startswith(":memory:"):
        yield "an in-memory warehouse (no lock needed)"
        return
    lock_path = f"{os.path.abspath(path)}.scheduler.lock"
    try:
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"{ENV_PREFIX}WAREHOUSE: cannot create {lock_path}: {exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown pid"
            raise SchedulerBusyError(
                f"another company-activity scheduler already serves {path} ({holder}; lock file "
                f"{lock_path}). One scheduler per warehouse: stop that one first; a one-off run is "
                "`company-activity run`"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield lock_path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _pg_scheduler_lock(url: str) -> Iterator[str]:
    try:
        import psycopg

        from .postgres import redact
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            f"{ENV_PREFIX}WAREHOUSE is a PostgreSQL URL but psycopg is not installed: "
            "pip install 'company-activity[postgres]'"
        ) from exc
    name = f"company-activity scheduler pid {os.getpid()} on {socket.gethostname()}"[:63]
    try:
        con = psycopg.connect(url, autocommit=True, application_name=name, connect_timeout=15)
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"cannot connect to the PostgreSQL warehouse {redact(url)}: {detail}") from None
    try:
        row = con.execute("select pg_try_advisory_lock(%s)", (PG_SCHEDULER_LOCK_KEY,)).fetchone()
        if row is None or not row[0]:
            holder = con.execute(
                "select coalesce(nullif(a.application_name, ''), 'backend pid ' || a.pid) "
                "from pg_locks as l join pg_stat_activity as a on a.pid = l.pid "
                "where l.locktype = 'advisory' and l.granted and l.database = "
                "(select oid from pg_database where datname = current_database()) "
                "and ((l.classid::bigint << 32) | l.objid::bigint) = %s limit 1",
                (PG_SCHEDULER_LOCK_KEY,),
            ).fetchone()
            who = holder[0] if holder else "another session"
            raise SchedulerBusyError(
                f"another company-activity scheduler already serves {redact(url)} ({who}). "
                "One scheduler per warehouse: stop that one first; a one-off run is `company-activity run`"
            )
        try:
            yield f"advisory lock {PG_SCHEDULER_LOCK_KEY} on {redact(url)}"
        finally:
            # released before the close returns: a backend ends (and drops its locks) only some time
            # after its client hung up, so a scheduler started at once after this one could find it held
            with contextlib.suppress(psycopg.Error):
                con.execute("select pg_advisory_unlock(%s)", (PG_SCHEDULER_LOCK_KEY,))
    finally:
        con.close()  # the server drops the session's advisory lock with it (if the unlock did not run)
