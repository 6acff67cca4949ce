"""The SQL of company-activity: one dialect that both DuckDB and PostgreSQL run.

Files hold either plain statements separated by ``;`` at the end of a line, or named queries introduced by
``-- name: NAME`` lines. Values are bound parameters written ``:name``; each warehouse rewrites them to
its driver's placeholder style. Nothing is ever formatted into SQL text.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([a-z0-9_]+)\s*$", re.MULTILINE)


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
