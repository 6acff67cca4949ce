"""Monitoring: volume anomalies of each source, and recovery notices.

**Volume anomalies.** Each source's daily count — ``crm``: the rows of a loaded CRM snapshot
(``ops.crm_snapshots.row_count``); ``usage``: the records of a complete API day
(``ops.usage_days.record_count``) — is compared for day D with the previous day (D-1) and with the same
weekday a week earlier (D-7). With the default baseline ``"both"``, a drop of more than the threshold
(default 10 %) against **both** is an anomaly, so a normal weekend dip (down against Friday, level with last
Saturday) is not; with no D-7 figure the previous day alone decides; with no D-1 figure (or no figure for D)
nothing is decided. **A baseline of 0 is no usable figure** (a drop from 0 has no size): it counts exactly as
a missing figure, so with D-7 = 0 the previous day alone decides, and with D-1 = 0 nothing is decided; the
message says so ("… is no usable baseline"). ``"previous_day"`` and ``"week_ago"`` use one baseline only;
``"off"`` disables the check of a source. Anomalies alert; they block publishing only when the source is
configured blocking.

Settings: ``volume_{crm,usage}_threshold``, ``volume_{crm,usage}_baseline``, ``volume_{crm,usage}_blocking``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, TypeAlias

from ..alerts import Alert, recovered_alert
from ..config import Settings, VolumeBaseline
from ..quality import CheckResult
from ..run.vocab import rerun_hint
from ..state import RunStateStore

Source = Literal["crm", "usage"]
SOURCES: tuple[Source, ...] = ("crm", "usage")
SOURCE_STEP: dict[Source, str] = {"crm": "ingest_crm", "usage": "ingest_usage"}
_WHAT: dict[Source, str] = {"crm": "CRM snapshot rows", "usage": "API usage records"}


@dataclass(frozen=True)
class VolumeRule:
    """How one source is checked."""

    threshold: float = 0.10
    baseline: VolumeBaseline = "both"
    blocking: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")


def volume_rules(settings: Settings) -> dict[Source, VolumeRule]:
    return {
        "crm": VolumeRule(
            settings.volume_crm_threshold, settings.volume_crm_baseline, settings.volume_crm_blocking
        ),
        "usage": VolumeRule(
            settings.volume_usage_threshold, settings.volume_usage_baseline, settings.volume_usage_blocking
        ),
    }


@dataclass(frozen=True)
class VolumeCheck:
    """The volume check of one source and day: its figures, drops (fractions; negative = a rise), verdict.

    ``anomalous`` is the verdict; ``message`` says it in words with the figures.
    """

    source: Source
    day: date
    count: int
    previous_day_count: int | None
    week_ago_count: int | None
    previous_day_drop: float | None
    week_ago_drop: float | None
    threshold: float
    baseline: VolumeBaseline
    blocking: bool
    anomalous: bool
    message: str

    @property
    def check_name(self) -> str:
        return f"volume_{self.source}"

    @property
    def step(self) -> str:
        return SOURCE_STEP[self.source]

    @property
    def status(self) -> str:
        """``pass``, ``warn`` (anomalous, not blocking) or ``fail`` (anomalous and blocking)."""
        if not self.anomalous:
            return "pass"
        return "fail" if self.blocking else "warn"

    @property
    def observed(self) -> float | None:
        """The drop that decided: the smaller of the drops compared (both had to exceed the threshold)."""
        drops = [d for d in (self.previous_day_drop, self.week_ago_drop) if d is not None]
        if self.baseline == "previous_day":
            drops = [self.previous_day_drop] if self.previous_day_drop is not None else []
        elif self.baseline == "week_ago":
            drops = [self.week_ago_drop] if self.week_ago_drop is not None else []
        return round(min(drops), 6) if drops else None

    @property
    def figures(self) -> dict[str, str]:
        figures = {"count": str(self.count)}
        for label, n, drop in (
            ("previous day", self.previous_day_count, self.previous_day_drop),
            ("week ago", self.week_ago_count, self.week_ago_drop),
        ):
            if n is not None:
                figures[label] = str(n) + (f" ({_signed_pct(-drop)})" if drop is not None else "")
        figures["threshold"] = f"drop > {self.threshold:.0%} ({self.baseline.replace('_', ' ')})"
        return figures

    def to_check_result(self) -> CheckResult:
        """As a data-quality result (``observed`` is the deciding drop, 0 when nothing was compared)."""
        return CheckResult(
            self.day,
            self.check_name,
            self.status,
            self.blocking,
            self.observed or 0.0,
            self.threshold,
            self.message,
        )

    def alert(self, run_id: str, *, rerun: str | None = None) -> Alert:
        """The alert of an anomaly: a warning, or an error when the source is blocking."""
        return Alert(
            "error" if self.blocking else "warning",
            f"volume anomaly: {self.source}",
            self.message,
            run_id,
            day=self.day,
            step=self.step,
            rerun=rerun if rerun is not None else rerun_hint("run", self.day),
            figures=self.figures,
        )


VolumeAnomaly: TypeAlias = VolumeCheck  # a VolumeCheck whose ``anomalous`` is True


def drop_fraction(count: int, baseline: int | None) -> float | None:
    """``(baseline - count) / baseline``; None without a positive baseline (0 is no usable figure)."""
    if baseline is None or baseline <= 0:
        return None
    return (baseline - count) / baseline


def evaluate_volume(
    source: Source,
    day: date,
    count: int,
    previous_day_count: int | None,
    week_ago_count: int | None,
    rule: VolumeRule,
) -> VolumeCheck:
    """The verdict on one source's count of ``day`` against its baselines (pure; no I/O)."""
    prev = drop_fraction(count, previous_day_count)
    week = drop_fraction(count, week_ago_count)
    t = rule.threshold
    if rule.baseline == "previous_day":
        decided, anomalous = prev is not None, prev is not None and prev > t
    elif rule.baseline == "week_ago":
        decided, anomalous = week is not None, week is not None and week > t
    elif rule.baseline == "both":
        decided = prev is not None
        anomalous = prev is not None and prev > t and (week is None or week > t)
    else:  # "off"
        decided, anomalous = False, False
    what = _WHAT[source]
    comparisons = []
    if previous_day_count is not None:
        comparisons.append(f"{previous_day_count} the previous day ({_change(prev)})")
    if week_ago_count is not None:
        weekday = (day - timedelta(days=7)).strftime("%A")
        comparisons.append(f"{week_ago_count} on {weekday} a week earlier ({_change(week)})")
    against = "; ".join(comparisons) or "no earlier figure"
    if anomalous:
        if week is not None:
            both = "the previous day and the same weekday a week earlier"
        elif week_ago_count is None:
            both = "the previous day (no figure a week earlier)"
        else:  # a week-old figure of 0 (see drop_fraction)
            both = f"the previous day (a week-earlier figure of {week_ago_count} is no usable baseline)"
        basis = {
            "previous_day": "the previous day",
            "week_ago": "the same weekday a week earlier",
            "both": both,
        }.get(rule.baseline, "")
        message = (
            f"{what} of {day.isoformat()} dropped more than {t:.0%} against {basis}: {count} vs {against}"
        )
    elif not decided:
        message = f"{what} of {day.isoformat()}: {count}; not compared (no baseline figure: {against})"
    else:
        message = f"{what} of {day.isoformat()}: {count} vs {against}; within {t:.0%}"
    return VolumeCheck(
        source=source,
        day=day,
        count=count,
        previous_day_count=previous_day_count,
        week_ago_count=week_ago_count,
        previous_day_drop=prev,
        week_ago_drop=week,
        threshold=t,
        baseline=rule.baseline,
        blocking=rule.blocking,
        anomalous=anomalous,
        message=message,
    )


def daily_counts(state: RunStateStore, day: date) -> dict[tuple[Source, date], int]:
    """{(source, day): count} for ``day``, the day before and the same weekday a week earlier."""
    out: dict[tuple[Source, date], int] = {}
    for src, d, n in state.volume_counts(day):
        source: Source = "crm" if src == "crm" else "usage"
        out[(source, _as_date(d))] = n
    return out


def volume_checks(
    state: RunStateStore, day: date, settings: Settings, *, sources: Iterable[Source] = SOURCES
) -> list[VolumeCheck]:
    """The volume check of each source that has a count for ``day`` and is not ``"off"``."""
    rules = volume_rules(settings)
    counts = daily_counts(state, day)
    checks = []
    for source in sources:
        rule = rules[source]
        count = counts.get((source, day))
        if rule.baseline == "off" or count is None:
            continue
        checks.append(
            evaluate_volume(
                source,
                day,
                count,
                counts.get((source, day - timedelta(days=1))),
                counts.get((source, day - timedelta(days=7))),
                rule,
            )
        )
    return checks


def detect_volume_anomalies(
    state: RunStateStore, day: date, settings: Settings, *, sources: Iterable[Source] = SOURCES
) -> list[VolumeAnomaly]:
    """The anomalous volume checks of ``day`` (see the module's doc); empty when all is normal."""
    return [c for c in volume_checks(state, day, settings, sources=sources) if c.anomalous]


def record_volume_checks(
    state: RunStateStore, run_id: str, checks: Sequence[VolumeCheck], *, checked_at: datetime | None = None
) -> None:
    """Store checks as ``ops.quality_results`` rows (``volume_crm``, ``volume_usage``) in one transaction."""
    rows = [
        CheckResult(c.day, c.check_name, c.status, c.blocking, c.observed, c.threshold, c.message)
        for c in checks
    ]
    state.record_checks(run_id, rows, checked_at=checked_at)


# -- recovery notices -------------------------------------------------------------------------------------
def previous_failure(state: RunStateStore, *, run_id: str, step: str, day: date) -> str | None:
    """The error of ``step`` for ``day`` if its last finished outcome in an earlier run was a failure.

    Returns None when it last succeeded (or never ran): then a success now is no recovery. A failure
    recorded without a message returns ``"failed"``.
    """
    previous = state.previous_step_outcome(run_id=run_id, step=step, day=day)
    if previous is None or previous[0] != "failed":
        return None
    return previous[1] or "failed"


def recovery_alert(
    state: RunStateStore, *, run_id: str, step: str, day: date, rerun: str | None = None
) -> Alert | None:
    """The "recovered" notice for ``step`` of ``day`` that just succeeded, if it had failed before."""
    error = previous_failure(state, run_id=run_id, step=step, day=day)
    if error is None:
        return None
    return recovered_alert(run_id, step, day, error, rerun=rerun)


def _signed_pct(change: float) -> str:
    return f"{change:+.1%}"


def _change(drop: float | None) -> str:
    """The change against a figure that is there: a percentage, or why a 0 cannot be one."""
    return "no usable baseline" if drop is None else _signed_pct(-drop)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
