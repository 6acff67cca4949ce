"""The model of ``analytics.company_daily_activity`` in Spark SQL, translated from the one definition.

``sql/populate_company_daily_activity.sql`` (the query named ``candidate``: one pass, a 7-day RANGE window
per company) and ``day_summary`` are parsed with sqlglot (PostgreSQL dialect) and written out as Spark SQL.
Three mechanical rewrites make them run on Spark with the same meaning:

- the tables become the session's temporary views (``stg.crm_daily`` -> ``stg_crm_daily``, ...);
- ``CREATE TEMPORARY TABLE build_candidate AS <select>`` keeps only the select (the engine registers it);
- ``day - CAST('2000-01-01' AS DATE)`` (a day number: the window's integer RANGE key) becomes
  ``DATEDIFF(day, DATE '2000-01-01')``: on Spark, date minus date is an INTERVAL, not an integer.

``date - 6`` (a date six days earlier) and ``:name`` parameter markers mean the same on Spark, which binds
them with ``spark.sql(query, args=...)``.
"""

from __future__ import annotations

from functools import cache

from ... import sql as sqlfiles
from .tables import TABLES

POPULATE = "populate_company_daily_activity.sql"


def translate(statement: str) -> str:
    """One PostgreSQL-dialect statement (a select, or ``create temporary table … as <select>``) as Spark SQL
    over the session's views."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(statement, read="postgres")
    if isinstance(tree, exp.Create):
        query = tree.expression
        assert isinstance(query, exp.Expression)
        tree = query
    views = {t.name: t.view for t in TABLES}

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.db:
            full = f"{node.db}.{node.name}"
            if full in views:
                return exp.Table(this=exp.to_identifier(views[full]), alias=node.args.get("alias"))
        if (
            isinstance(node, exp.Sub)
            and isinstance(node.expression, exp.Cast)
            and node.expression.to.is_type("date")
            and isinstance(node.expression.this, exp.Literal)
            and node.expression.this.is_string
        ):
            return exp.DateDiff(this=node.this.copy(), expression=node.expression.copy())
        return node

    return tree.transform(rewrite).sql(dialect="spark")


@cache
def query(name: str) -> str:
    """The Spark SQL of the named query of populate_company_daily_activity.sql (a single statement)."""
    statements = sqlfiles.query(POPULATE, name)
    if len(statements) != 1:
        raise ValueError(f"{POPULATE} {name}: expected one statement, found {len(statements)}")
    return translate(statements[0])


@cache
def quality_query() -> str:
    """The Spark SQL of quality.sql's ``candidate_checks`` (on the view build_candidate)."""
    (statement,) = sqlfiles.query("quality.sql", "candidate_checks")
    return translate(statement)
