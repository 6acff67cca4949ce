"""Fixtures for the PostgreSQL warehouse, and warehouses of either engine.

Use them from a test module by assigning them to module globals (``pg_url = pg.pg_url``).

The server: ``COMPANY_ACTIVITY_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``),
a role that may create databases. When it cannot be reached the tests skip, saying what to start; with
``COMPANY_ACTIVITY_TEST_POSTGRES=required`` (as ``.ci/run`` sets) they fail instead.

Isolation: a test session creates its own database, ``ca_test_<pid>_<random>``, and drops it at the end;
every test starts from an empty one (the warehouse's schemas dropped, other connections to it ended:
dropping whole databases costs half a second each). A test that needs a second warehouse gets another
database. A session also drops what sessions of dead processes left behind.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from company_activity.warehouse import Warehouse, connect

REQUIRED_ENV = "COMPANY_ACTIVITY_TEST_POSTGRES"
URL_ENV = "COMPANY_ACTIVITY_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENGINES = ["duckdb", "postgresql"]


def missing(required_env: str, message: str) -> NoReturn:
    """Skip (or, when ``<required_env>=required``, fail) a test whose service is not there."""
    if os.environ.get(required_env, "").lower() == "required":
        pytest.fail(f"{message} ({required_env}=required)", pytrace=False)
    pytest.skip(message)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class PgDatabases:
    """Creates and drops the test databases of one pytest session."""

    def __init__(self, admin_url: str):
        import psycopg

        self.admin_url = admin_url
        self.prefix = f"ca_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._n = itertools.count(1)
        self._con = psycopg.connect(admin_url, autocommit=True)
        self._drop_abandoned()
        self.main = self.create()
        self._main_con = psycopg.connect(self.main, autocommit=True)

    def create(self) -> str:
        name = f"{self.prefix}_{next(self._n)}"
        self._con.execute(f'create database "{name}"')
        # a test database need not wait for the disk at each commit (a server crash is not tested)
        self._con.execute(f'alter database "{name}" set synchronous_commit = off')
        return with_database(self.admin_url, name)

    def fresh(self) -> str:
        """The session's database, emptied: no warehouse schemas, nobody else connected."""
        self._main_con.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = current_database() and pid <> pg_backend_pid()"
        )
        schemas = self._main_con.execute(
            "select nspname from pg_namespace where nspname not like 'pg\\_%' "
            "and nspname not in ('information_schema', 'public')"
        ).fetchall()
        for (name,) in schemas:
            self._main_con.execute(f'drop schema "{name}" cascade')
        return self.main

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        self._con.execute(f'drop database if exists "{name}" with (force)')

    def drop_all(self) -> None:
        self._main_con.close()
        for (name,) in self._con.execute(
            "select datname from pg_database where datname like %s", (self.prefix + "\\_%",)
        ).fetchall():
            self._con.execute(f'drop database if exists "{name}" with (force)')
        self._con.close()

    def _drop_abandoned(self) -> None:
        """Databases of test sessions whose process is gone (a killed pytest) are dropped.

        Only when nobody is connected to them (no FORCE): a live session, maybe of a process this one
        cannot see, keeps a connection to its database the whole time.
        """
        import psycopg

        rows = self._con.execute(
            "select datname from pg_database where datname like 'ca\\_test\\_%'"
        ).fetchall()
        for (name,) in rows:
            pid = name.split("_")[2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                with contextlib.suppress(psycopg.Error):
                    self._con.execute(f'drop database if exists "{name}"')


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of a reachable PostgreSQL server (or skip / fail saying what to start)."""
    url = os.environ.get(URL_ENV) or DEFAULT_URL
    try:
        import psycopg
    except ImportError:
        missing(REQUIRED_ENV, "psycopg is not installed: pip install -e '.[dev]'")
    try:
        with psycopg.connect(url, connect_timeout=3) as con:
            con.execute("select 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        missing(
            REQUIRED_ENV,
            f"PostgreSQL is not reachable at {url} ({first}): start PostgreSQL at 127.0.0.1:5432 "
            f"(user postgres, trust auth) or set {URL_ENV} to a server where you may create databases",
        )
    return url


@pytest.fixture(scope="session")
def pg_databases(pg_server: str) -> Iterator[PgDatabases]:
    dbs = PgDatabases(pg_server)
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture
def pg_url(pg_databases: PgDatabases) -> str:
    """The URL of an empty database for this test alone."""
    return pg_databases.fresh()


@pytest.fixture
def pg_wh(pg_url: str) -> Iterator[Warehouse]:
    """A PostgreSQL warehouse with the schema created."""
    warehouse = connect(pg_url)
    warehouse.init_schema()
    yield warehouse
    warehouse.close()


@pytest.fixture
def new_warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """``new_warehouse_url(engine)``: the location of a new, empty warehouse of that engine."""
    counter = itertools.count(1)
    pg_used = False

    def make(engine: str) -> str:
        nonlocal pg_used
        if engine == "duckdb":
            return str(tmp_path / f"warehouse-{next(counter)}.duckdb")
        dbs: PgDatabases = request.getfixturevalue("pg_databases")
        if not pg_used:
            pg_used = True
            return dbs.fresh()
        url = dbs.create()
        request.addfinalizer(lambda: dbs.drop(url))
        return url

    return make


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once per engine."""
    return str(request.param)


@pytest.fixture
def wh_url(engine: str, new_warehouse_url: Callable[[str], str]) -> str:
    """An empty warehouse (no schema yet) of the engine under test."""
    return new_warehouse_url(engine)


@pytest.fixture
def any_wh(wh_url: str) -> Iterator[Warehouse]:
    """A warehouse of the engine under test, with the schema created."""
    warehouse = connect(wh_url)
    warehouse.init_schema()
    yield warehouse
    warehouse.close()
