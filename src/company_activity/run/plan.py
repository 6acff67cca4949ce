"""The plan of a run: PURE functions from a snapshot of run state and a request to what a run does.

Nothing here touches a database, the lake, the clock or the network: the caller reads the state it needs
(usage-day statuses, the first run day, the latest step outcomes, the complete days, the next CRM
snapshot) from the run-state store and the data engine and passes it in. Unit tests: tests/unit/test_plan.py.

- :func:`plan_run` — ``run`` without a date: catch up every incomplete day since the start date, mark the
  days that left the API's retention lost, and always redo yesterday.
- :func:`closed` / :func:`closed_range` — refuse a day that is not over (today or later, UTC).
- :func:`first_unfinished_step`, :func:`steps_from` — ``rerun``.
- :func:`crm_affected_days`, :func:`usage_affected_days`, :func:`build_candidates` — which days a changed
  input makes stale (the rebuild ranges).
- :func:`gate_missing`, :func:`split_gate` — the build gate: D is built only when usage is complete for D
  and every day of ``D-6 … D-1`` on or after the first usage day.
- :func:`unchanged_days` — the days a ``build`` skips (built, inputs unchanged since).
- :func:`segments` — contiguous runs of days, each built as one unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ..errors import BuildGateError, ConfigError
from .vocab import DONE, STEP_BUILD, STEPS, Step

#: a change of usage on D changes the 7-day window of D … D+6
WINDOW_DAYS = 7


@dataclass(frozen=True)
class RunPlan:
    """What one run does: its command line (as recorded), its days (oldest first) and its steps.

    ``only``: exactly these steps (an ingest step does not build, no step runs another's checks).
    ``lost``: days marked lost before anything runs; ``catch_up``: the earlier days a ``run`` redoes.
    ``replay``: usage comes from the lake's latest complete raw run instead of the API.
    ``gate_only``: days before the start date that are ingested only because a later day's build needs
    them (they are not built themselves).
    ``skip_unchanged``: the build step skips each day already built whose inputs were not loaded since
    (:func:`unchanged_days`); ``build --full`` and every other command rebuild what they are asked to.
    """

    command: str
    days: tuple[date, ...]
    steps: tuple[Step, ...] = STEPS
    only: bool = False
    lost: tuple[date, ...] = ()
    catch_up: tuple[date, ...] = ()
    replay: bool = False
    notes: tuple[str, ...] = field(default=())
    gate_only: tuple[date, ...] = ()  # days ingested only for the build gate of later days, not built
    #: ``build`` without ``--full``: days already built whose inputs did not change since are skipped
    skip_unchanged: bool = False

    def describe(self) -> list[str]:
        """The plan in words (``--dry-run``)."""

        def show(ds: Sequence[date]) -> str:
            return ", ".join(d.isoformat() for d in ds) or "none"

        return [
            f"command: company-activity {self.command}",
            f"days: {show(self.days)}",
            f"steps: {', '.join(self.steps)}" + (" (only these)" if self.only else ""),
            f"catch-up: {show(self.catch_up)}",
            f"lost: {show(self.lost)}",
            *([f"ingested for the build gate only: {show(self.gate_only)}"] if self.gate_only else []),
            *self.notes,
        ]


def days(start: date, end: date) -> Iterator[date]:
    """Every day of ``start … end`` (empty when ``end < start``)."""
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def closed(day: date, today: date, what: str) -> None:
    """Refuse a day that is not over yet (today or later, UTC)."""
    if day >= today:
        raise ConfigError(f"{what} {day.isoformat()} is not a closed day yet (today is {today.isoformat()})")


def closed_range(start: date, end: date, today: date, start_option: str) -> list[date]:
    """The days of ``start … end``; refuses an empty range or one that reaches today."""
    if end < start:
        raise ConfigError(f"--end {end.isoformat()} is before {start_option} {start.isoformat()}")
    closed(end, today, "--end")
    return list(days(start, end))


def plan_run(
    *,
    today: date,
    start: date,
    retention_days: int,
    statuses: Mapping[date, str],
    first_usage_day: date | None = None,
    start_note: str | None = None,
) -> RunPlan:
    """``run`` without a date: ``statuses`` are the usage-day statuses of ``start - 6 … yesterday``.

    Every incomplete day since ``start`` is caught up (oldest first). So are the incomplete days of the
    7-day windows of those days that lie before ``start`` but on or after ``first_usage_day``: without
    them the build gate could not pass (a one-off run in the past made an earlier day complete, and so
    the first usage day, without moving the start date).
    """
    yesterday = today - timedelta(days=1)
    oldest_served = today - timedelta(days=retention_days)
    lost = [
        d
        for d in days(start, min(yesterday, oldest_served - timedelta(days=1)))
        if statuses.get(d) not in ("complete", "lost")
    ]
    todo = [
        d
        for d in days(max(start, oldest_served), yesterday)
        if statuses.get(d) not in ("complete", "lost") or d == yesterday
    ]
    window: list[date] = []
    if todo and first_usage_day is not None and first_usage_day < start:
        window_start = max(todo[0] - timedelta(days=6), first_usage_day, oldest_served)
        window = [
            d
            for d in days(window_start, start - timedelta(days=1))
            if statuses.get(d) not in ("complete", "lost")
        ]
    todo = window + todo
    notes = (start_note,) if start_note else ()
    return RunPlan(
        "run", tuple(todo), lost=tuple(lost), catch_up=tuple(todo[:-1]), notes=notes, gate_only=tuple(window)
    )


def first_unfinished_step(latest: Mapping[str, str]) -> Step:
    """The first step whose latest outcome for a day is not done (``build`` when all are)."""
    for step in STEPS:
        if latest.get(step) not in DONE:
            return step
    return STEP_BUILD


def steps_from(step: str) -> tuple[Step, ...]:
    if step not in STEPS:
        raise ConfigError(f"--from-step {step!r} is not one of {', '.join(STEPS)}")
    return STEPS[STEPS.index(step) :]


def crm_affected_days(day: date, next_snapshot: date | None, today: date) -> set[date]:
    """Days whose rows depend on the CRM snapshot of ``day``: up to the next snapshot, plus 6 for churn."""
    last = (next_snapshot - timedelta(days=1)) if next_snapshot is not None else today
    return set(days(day, last + timedelta(days=WINDOW_DAYS - 1)))


def usage_affected_days(day: date) -> set[date]:
    """Days whose rows depend on the usage of ``day``: ``day … day+6``."""
    return set(days(day, day + timedelta(days=WINDOW_DAYS - 1)))


def build_horizon(today: date) -> date:
    return today - timedelta(days=1)


def unchanged_days(
    ds: Iterable[date], built: Mapping[date, datetime], stale: set[date]
) -> dict[date, datetime]:
    """The days of ``ds`` a ``build`` skips, with the time of their build: built (``built``: the built
    days and their ``built_at``) and not stale (no input loaded since that build: ``stale``)."""
    return {d: built[d] for d in sorted(set(ds)) if d in built and d not in stale}


def build_candidates(targets: set[date], affected: set[date], complete: set[date]) -> set[date]:
    """The days to try to build: every target, and each affected day whose own usage is complete."""
    return targets | (affected & complete)


def gate_missing(day: date, complete: set[date], first: date | None) -> list[date]:
    """The days whose incomplete usage keeps ``day`` from being built (empty: it can be built)."""
    if first is None:
        return [day]
    needed = [day - timedelta(days=k) for k in range(WINDOW_DAYS - 1, -1, -1)]
    return [d for d in needed if (d >= first or d == day) and d not in complete]


def split_gate(
    candidates: Iterable[date], complete: set[date], first: date | None
) -> tuple[list[date], dict[date, BuildGateError]]:
    """Split ``candidates`` into buildable days and the gate errors of the others."""
    ok: list[date] = []
    blocked: dict[date, BuildGateError] = {}
    for day in sorted(set(candidates)):
        missing = gate_missing(day, complete, first)
        if missing:
            blocked[day] = BuildGateError(day, missing)
        else:
            ok.append(day)
    return ok, blocked


def segments(ds: Iterable[date]) -> list[tuple[date, date]]:
    """Contiguous runs of days: [1,2,3,5] -> [(1,3), (5,5)]."""
    out: list[tuple[date, date]] = []
    for day in sorted(set(ds)):
        if out and out[-1][1] + timedelta(days=1) == day:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def retention_window(today: date, start: date, retention_days: int, warning_days: int) -> tuple[date, date]:
    """The days a retention warning looks at: from the oldest day the API serves, ``warning_days`` on."""
    oldest_served = today - timedelta(days=retention_days)
    window_end = oldest_served + timedelta(days=warning_days)
    return max(start, oldest_served), min(window_end, today - timedelta(days=1))
