"""The SQL of company-activity: one dialect that both DuckDB and PostgreSQL run.

Files hold either plain statements separated by ``;`` at the end of a line, or named queries introduced by
``-- name: NAME`` lines. Values are bound parameters written ``:name``; each warehouse rewrites them to
its driver's placeholder style. No value is ever formatted into SQL text; the one exception is an
identifier where a statement cannot bind one (DDL over names read from a catalog, a table's columns), and
every such identifier goes through :func:`quote_ident`.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([a-z0-9_]+)\s*$", re.MULTILINE)


def quote_ident(name: str, mark: str = '"') -> str:
    """``name`` as one quoted SQL identifier: between two ``mark`` with each ``mark`` in it doubled.

    ``mark`` is ``"`` for DuckDB and PostgreSQL (and standard SQL), a backtick for Spark SQL. Whatever the
    name holds (quotes, dots, semicolons, spaces, ``"; drop table x; --``), the result is one identifier
    of exactly that name. A NUL is refused: no engine's identifier can hold one.
    """
    if mark not in ('"', "`"):
        raise ValueError(f'an identifier is quoted with " or `, not {mark!r}')
    if "\x00" in name:
        raise ValueError("an SQL identifier cannot hold a NUL character")
    return mark + name.replace(mark, mark + mark) + mark


def qualified(*parts: str, mark: str = '"') -> str:
    """A qualified name (``catalog.schema.table``) with each part quoted by :func:`quote_ident`."""
    return ".".join(quote_ident(part, mark) for part in parts)


def quote_literal(value: str) -> str:
    """``value`` as a standard SQL string literal (DuckDB, PostgreSQL): in ``'``, each ``'`` doubled.

    Only for the few places no parameter can go (``attach``, a file pattern inside DDL); a NUL is refused.
    """
    if "\x00" in value:
        raise ValueError("an SQL string literal cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"


@cache
def text(filename: str) -> str:
    """The text of ``filename`` (e.g. ``create_tables.sql``)."""
    return resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")


def split_statements(sql: str) -> list[str]:
    """Statements of a SQL text, split on ``;`` at the end of a line; comment-only pieces dropped."""
    pieces = re.split(r";\s*$", sql, flags=re.MULTILINE)
    out = []
    for piece in pieces:
        body = "\n".join(line for line in piece.splitlines() if not line.strip().startswith("--"))
        if body.strip():
            out.append(body.strip())
    return out


@cache
def named(filename: str) -> dict[str, list[str]]:
    """The named queries of ``filename``: name -> its statements."""
    sql = text(filename)
    parts = _NAME.split(sql)
    queries: dict[str, list[str]] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        queries[name] = split_statements(body)
    return queries


def query(filename: str, name: str) -> list[str]:
    try:
        return named(filename)[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in {filename}") from None
