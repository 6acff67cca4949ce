"""Schema versions of the warehouse: an ordered list of migrations, the same for DuckDB and PostgreSQL.

The warehouse records every version it reached in ``ops.schema_version``. :meth:`Warehouse.init_schema`
(run by ``company-activity init`` and at the start of every command) creates a new warehouse by applying
every migration in order, migrates an older one forward from the version after its own, and refuses, with
a clear message and without changing anything, a warehouse whose version is newer than this release.

Rules for adding a migration:

- ``create_tables.sql`` is version 1 and stays as it is forever; a later change is a new entry below
  (version 2, 3, ...), never an edit of an older one, so a fresh warehouse and a migrated one end up alike.
- A migration is engine-neutral SQL, like every file in :mod:`company_activity.sql`: either a file of
  that package (``sql_file=``) or literal statements (``statements=``), or both (the file first).
- Each migration runs in its own transaction together with its ``ops.schema_version`` row: a failure or a
  crash leaves the warehouse at the previous version, and the next ``init`` tries again.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import sql as sqlfiles


@dataclass(frozen=True)
class Migration:
    """One step of the schema: what brings a warehouse from ``version - 1`` to ``version``."""

    version: int
    description: str
    sql_file: str | None = None
    statements: tuple[str, ...] = ()
    index_file: str | None = None  # unique indexes, run only where the warehouse keeps key indexes

    def sql(self, *, key_indexes: bool = True) -> list[str]:
        """The statements of this migration, in order (``key_indexes``: include ``index_file``)."""
        out: list[str] = []
        if self.sql_file is not None:
            out.extend(sqlfiles.split_statements(sqlfiles.text(self.sql_file)))
        out.extend(self.statements)
        if key_indexes and self.index_file is not None:
            out.extend(sqlfiles.split_statements(sqlfiles.text(self.index_file)))
        return out


MIGRATIONS: list[Migration] = [
    Migration(
        1, "initial schema: stg, analytics and ops", sql_file="create_tables.sql", index_file="keys.sql"
    ),
    Migration(2, "usage counts are 64-bit (BIGINT)", sql_file="migrate_wide_counts.sql"),
    # the weekly and monthly marts and the daily summary (filled by sql/marts.sql at each build)
    Migration(3, "weekly and monthly marts", sql_file="marts_tables.sql", index_file="marts_indexes.sql"),
    Migration(4, "what each build changed and the alerts each run sent", sql_file="migrate_run_changes.sql"),
    # issue 24: ops.usage_days.quarantined_count and ops.usage_quarantine (docs/usage-api-policy.md)
    Migration(
        5, "usage records quarantined for the project's limits", sql_file="migrate_usage_quarantine.sql"
    ),
]


def latest(migrations: list[Migration] | None = None) -> int:
    """The schema version this release brings a warehouse to."""
    steps = MIGRATIONS if migrations is None else migrations
    check(steps)
    return steps[-1].version


def pending(current: int | None, migrations: list[Migration] | None = None) -> list[Migration]:
    """The migrations a warehouse at version ``current`` (None: a new warehouse) still needs, in order."""
    steps = MIGRATIONS if migrations is None else migrations
    check(steps)
    return [m for m in steps if current is None or m.version > current]


def check(migrations: list[Migration]) -> None:
    """The versions must be 1, 2, 3, ... in order: a gap or a duplicate is a bug of the release."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"schema migrations must be numbered 1, 2, 3, ... in order; got {versions}")
