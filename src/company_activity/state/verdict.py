"""A day's verdict: the one word every surface (``status``, ``runs``, the web UI, the report, the alerts,
the Dagster checks) shows for a day, computed here and nowhere else.

The rules (``docs/verdicts.md`` explains them with examples):

- each part of a day has a level: the CRM snapshot, the usage day, the build, the quality checks;
- the day's verdict is the worst of them, in this order (worst first)::

      failed > lost > pending > last attempt failed > warning > ok > no data

- ``last attempt failed`` is a day whose data is complete and built (its parts are ``ok`` or ``warning``)
  but whose latest attempt at one of its steps failed or was interrupted: what the table holds comes from
  an earlier run, and the latest try to refresh it did not succeed (an API down during a re-fetch, say).

Pure: no database, no I/O. :func:`day_verdict` takes the plain facts of one day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

Verdict: TypeAlias = Literal["failed", "lost", "pending", "last attempt failed", "warning", "ok", "no data"]
FAILED: Final = "failed"
LOST: Final = "lost"
PENDING: Final = "pending"
ATTEMPT_FAILED: Final = "last attempt failed"
WARNING: Final = "warning"
OK: Final = "ok"
NO_DATA: Final = "no data"

#: worst first: a day's verdict is the first of these that any of its parts has
ORDER: tuple[Verdict, ...] = (FAILED, LOST, PENDING, ATTEMPT_FAILED, WARNING, OK, NO_DATA)
RANK: dict[Verdict, int] = {v: len(ORDER) - i for i, v in enumerate(ORDER)}


@dataclass(frozen=True)
class Look:
    """How a verdict is shown: a terminal glyph (unicode, ascii), its terminal style, a CSS colour and the
    legend's one-line meaning (the tooltip text)."""

    glyph: str
    ascii: str
    style: tuple[tuple[str, object], ...]
    css: str
    meaning: str


LOOK: dict[Verdict, Look] = {
    FAILED: Look("✗", "x", (("fg", "red"), ("bold", True)), "#d62728", "a step or a blocking check failed"),
    LOST: Look(
        "⊘", "L", (("fg", "magenta"), ("bold", True)), "#9467bd", "the API no longer serves the day's data"
    ),
    PENDING: Look(
        "…", "~", (("fg", "cyan"),), "#17becf", "not complete or not built yet: the next run takes it on"
    ),
    ATTEMPT_FAILED: Look(
        "↻",
        "r",
        (("fg", "bright_red"),),
        "#ff7f0e",
        "data complete (from an earlier run); the last attempt failed",
    ),
    WARNING: Look("!", "!", (("fg", "yellow"),), "#e6b800", "built, with a warning (a check, rejected rows)"),
    OK: Look("✓", "+", (("fg", "green"),), "#2ca02c", "built from complete data, every check passed"),
    NO_DATA: Look("·", ".", (("dim", True),), "#dddddd", "no run has touched the day"),
}

Level: TypeAlias = Verdict

#: the level of each status word of ``ops.*`` (a part of a day)
_STATUS_LEVEL: dict[str, Verdict] = {
    # ops.crm_snapshots
    "loaded": OK,
    "missing": FAILED,
    # ops.usage_days
    "complete": OK,
    "pending": PENDING,
    "lost": LOST,
    # ops.build_days
    "built": OK,
    "stale": PENDING,  # built, but its inputs changed since: the next run rebuilds it
    "not built": PENDING,  # usage complete, never built: the next run builds it
    # shared
    "failed": FAILED,
    "running": PENDING,
    "interrupted": PENDING,
    "warning": WARNING,
    "succeeded": OK,
    "skipped": NO_DATA,
    # ops.quality_results
    "pass": OK,
    "warn": WARNING,
    "fail": FAILED,
}


def status_level(status: object) -> Verdict:
    """The level of one status word (``None``/empty -> ``no data``; an unknown word -> ``warning``)."""
    if status is None or status == "":
        return NO_DATA
    return _STATUS_LEVEL.get(str(status).lower(), WARNING)


def worst(levels: object) -> Verdict:
    """The worst of ``levels`` (an iterable of verdicts); ``no data`` when there are none."""
    found = [lv for lv in levels if lv in RANK]  # type: ignore[attr-defined]
    return max(found, key=lambda lv: RANK[lv], default=NO_DATA)


@dataclass(frozen=True)
class DayFacts:
    """The plain facts of one day, as the read model gathers them from ``ops.*``."""

    crm_status: str | None = None
    crm_rejected: int = 0
    usage_status: str | None = None
    usage_quarantined: int = 0
    build_status: str | None = None  # built | stale | not built | failed | None
    check_statuses: tuple[str, ...] = ()  # the latest result of each check: pass | warn | fail
    #: the first step (in pipeline order) whose LATEST attempt on the day failed or was interrupted
    attempt_failed_step: str | None = None
    attempt_failed_status: str | None = None  # failed | interrupted
    running: bool = False  # a step of the day is running right now


#: the part of a day each step fills
_STEP_PART = {"ingest_crm": "crm", "ingest_usage": "usage", "build": "build"}


def part_levels(f: DayFacts) -> dict[str, Verdict]:
    """The level of each part of a day: crm, usage, build, checks."""
    crm = status_level(f.crm_status)
    if crm == OK and f.crm_rejected > 0:
        crm = WARNING  # loaded, but some rows were quarantined
    usage = status_level(f.usage_status)
    if usage == OK and f.usage_quarantined > 0:
        usage = WARNING  # complete, but some records were quarantined
    return {
        "crm": crm,
        "usage": usage,
        "build": status_level(f.build_status),
        "checks": worst(status_level(s) for s in f.check_statuses),
    }


def day_verdict(f: DayFacts) -> Verdict:
    """The verdict on one day (the module's docstring gives the rules)."""
    parts = part_levels(f)
    level = worst(parts.values())
    if f.running and RANK[level] < RANK[PENDING]:
        return PENDING
    if f.attempt_failed_step is not None:
        part = _STEP_PART.get(f.attempt_failed_step)
        if part is not None and parts[part] in (FAILED, LOST):
            return level  # that part says it already (a lost usage day's fetch "failed": it is lost)
        if level in (OK, WARNING) and f.build_status == "built":
            return ATTEMPT_FAILED
        if f.attempt_failed_status == "interrupted":
            return worst((level, PENDING))
        return FAILED
    return level
