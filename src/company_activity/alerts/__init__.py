"""Alerts: what went wrong, sent to every configured sink.

A sink is anything with ``name`` and ``send(alert)``. The log sink is always on; Teams and e-mail sinks join
it when configured (:func:`company_activity.alerts.factory.sinks_from_settings`). A sink retries its own
delivery (:class:`DeliveryPolicy`) and raises :class:`AlertDeliveryError` when it gives up; the
:class:`Alerter` logs that and carries on, so a delivery failure never replaces the error being reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Literal, Protocol

import tenacity

from ..errors import TerminalError
from ..redact import clip, redact
from ..run.vocab import command_head

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger("company_activity.alerts")

Severity = Literal["error", "warning", "info"]
AlertKind = Literal["problem", "recovered"]

PRODUCT = "company-activity"


@dataclass(frozen=True)
class Alert:
    """One alert. ``key`` identifies the failure so the same one is sent once per run.

    ``figures`` are the numbers behind it (a failed check's observed value and threshold, counts, …), shown
    as facts by every sink. ``kind`` is ``"recovered"`` for the notice that a failing (step, day) succeeded.
    """

    severity: Severity
    title: str
    message: str
    run_id: str
    day: date | None = None
    step: str | None = None
    rerun: str | None = None
    figures: dict[str, str] = field(default_factory=dict)
    kind: AlertKind = "problem"

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.title, self.day.isoformat() if self.day else None, self.step)

    @property
    def label(self) -> str:
        """``ERROR``, ``WARNING``, ``INFO`` or ``RECOVERED``."""
        return "RECOVERED" if self.kind == "recovered" else self.severity.upper()

    def text(self) -> str:
        parts = [f"[{self.label}] {self.title}"]
        if self.day:
            parts.append(f"day {self.day.isoformat()}")
        if self.step:
            parts.append(f"step {self.step}")
        parts.append(f"run {self.run_id}")
        body = " | ".join(parts) + f": {self.message}"
        if self.figures:
            body += " (" + ", ".join(f"{k}={v}" for k, v in self.figures.items()) + ")"
        if self.rerun:
            body += f" — rerun: {self.rerun}"
        return body

    def subject(self) -> str:
        """One line, e.g. ``[company-activity] ERROR step failure ingest_usage 2026-11-05``."""
        parts = [f"[{PRODUCT}]", self.severity.upper(), self.title]
        if self.kind == "recovered":
            parts = [f"[{PRODUCT}]", "RECOVERED"]
        if self.step:
            parts.append(self.step)
        if self.day:
            parts.append(self.day.isoformat())
        return " ".join(" ".join(parts).split())  # one line, whatever the title holds

    def facts(self) -> list[tuple[str, str]]:
        """(name, value) pairs every sink shows: run, day, step, severity, then the figures."""
        facts = [("Run", self.run_id)]
        if self.day:
            facts.append(("Day", self.day.isoformat()))
        if self.step:
            facts.append(("Step", self.step))
        facts.append(("Severity", self.label.lower()))
        facts.extend((k, v) for k, v in self.figures.items())
        return facts


def recovered_alert(
    run_id: str, step: str, day: date, previous_error: str | None, *, rerun: str | None = None
) -> Alert:
    """The info notice that ``step`` of ``day`` succeeded in run ``run_id`` after failing before.

    Its key differs from the failure's, so it is sent even in the run that recovers after a retry.
    """
    before = _shorten(previous_error or "no message recorded", 500)
    return Alert(
        "info",
        "recovered",
        f"{step} of {day.isoformat()} succeeded after failing earlier (last error: {before})",
        run_id,
        day=day,
        step=step,
        rerun=rerun,
        kind="recovered",
    )


class AlertSink(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


class AlertDeliveryError(TerminalError):
    """A sink gave up delivering an alert after its retries. The message never holds a secret."""

    def __init__(self, sink: str, message: str, *, attempts: int):
        super().__init__(message)
        self.sink = sink
        self.attempts = attempts


@dataclass(frozen=True)
class DeliveryPolicy:
    """How a sink retries: ``max_attempts`` in all, waits doubling from ``backoff_initial`` up to
    ``backoff_max`` seconds; ``timeout`` bounds each attempt (connect, send, read)."""

    max_attempts: int = 4
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.backoff_initial < 0 or self.backoff_max <= 0 or self.timeout <= 0:
            raise ValueError("backoff_initial must be >= 0; backoff_max and timeout must be > 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            max_attempts=settings.alert_max_attempts,
            backoff_initial=settings.alert_backoff_initial,
            backoff_max=settings.alert_backoff_max,
            timeout=settings.alert_timeout,
        )

    def once(self) -> DeliveryPolicy:
        """The same policy with a single attempt: for a sink whose previous delivery failed, so a dead
        webhook or mail server costs one full round of retries per run, not one per alert."""
        return replace(self, max_attempts=1)

    def wait_before(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); ``Retry-After`` is honoured
        up to ``backoff_max``."""
        wait = min(self.backoff_initial * 2.0 ** (attempt - 1), self.backoff_max)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max))
        return wait

    def retrying(
        self,
        *,
        sink: str,
        retry_if: Callable[[BaseException], bool],
        retry_after: Callable[[BaseException], float | None] = lambda _exc: None,
        sleep: Callable[[float], None] | None = None,
    ) -> tenacity.Retrying:
        """A tenacity ``Retrying`` for one delivery: re-raises the last exception when attempts run out."""

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_before(state.attempt_number, retry_after(exc) if exc else None)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "alert delivery to %s failed (attempt %d of %d): %s; retrying in %.1fs",
                sink,
                state.attempt_number,
                self.max_attempts,
                describe_error(exc) if exc else "no detail",
                state.upcoming_sleep,
            )

        return tenacity.Retrying(
            sleep=time.sleep if sleep is None else sleep,
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(retry_if),
            before_sleep=before_sleep,
            reraise=True,
        )


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, redacted (the sinks also strip their own secrets first)."""
    text = str(exc).strip()
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def redacted(alert: Alert) -> Alert:
    """``alert`` with every text passed through :func:`~company_activity.redact.redact`."""
    return replace(
        alert,
        title=redact(alert.title),
        message=redact(alert.message),
        rerun=redact(alert.rerun) if alert.rerun else alert.rerun,
        figures={k: redact(v) for k, v in alert.figures.items()},
    )


def once_note(once: bool) -> str:
    """What a delivery error adds when the sink tried once only because its previous delivery failed."""
    return " (tried once: its previous delivery had failed)" if once else ""


class LogSink:
    """Writes alerts to the log (always on)."""

    name = "log"

    def send(self, alert: Alert) -> None:
        level = {"error": logging.ERROR, "warning": logging.WARNING}.get(alert.severity, logging.INFO)
        log.log(level, "ALERT %s", alert.text())


@dataclass(frozen=True)
class DeliveryFailure:
    """An alert that one sink could not deliver (after its retries)."""

    sink: str
    alert: Alert
    error: str


class Alerter:
    """Sends each distinct alert once per run to every sink; a failing sink never hides the alert.

    ``sent`` lists the alerts (each once), ``failures`` the deliveries that failed. ``send`` never raises
    an ``Exception``: the failure being reported stays the run's outcome.

    With ``digest=True`` (a pipeline run) people get at most two messages per run and sink: the run's
    first error at once, and at the end (:meth:`flush`) one summary that lists every other alert of the
    run, each with its day, step and rerun command. The log sink still writes every alert as it happens.
    """

    def __init__(self, sinks: Sequence[AlertSink], *, digest: bool = False):
        self.sinks = list(sinks)
        self.sent: list[Alert] = []
        self.failures: list[DeliveryFailure] = []
        self.digest = digest
        self.summary: Alert | None = None
        self._held: list[Alert] = []
        self._first_error_sent = False
        self._keys: set[tuple[str, str | None, str | None]] = set()

    def send(self, alert: Alert) -> bool:
        """Deliver ``alert`` to every sink unless it was sent already in this run.

        Returns whether it was taken now (False for a duplicate). In digest mode an alert other than the
        run's first error is held for the summary (the log sink writes it at once).
        """
        if alert.key in self._keys:
            log.debug("alert %r for %s already sent in this run", alert.title, alert.key)
            return False
        self._keys.add(alert.key)
        alert = redacted(alert)
        self.sent.append(alert)
        if not self.digest:
            self._deliver(alert, self.sinks)
            return True
        self._deliver(alert, [s for s in self.sinks if s.name == LogSink.name])
        if alert.severity == "error" and not self._first_error_sent:
            self._first_error_sent = True
            self._deliver(alert, self._remote)
        else:
            self._held.append(alert)
        return True

    def flush(self, run_id: str, verdicts: Sequence[tuple[date, str, str]] = ()) -> Alert | None:
        """Send the run's summary of the held alerts to the sinks other than the log (digest mode).

        One held alert is sent as it is; several as one "run summary", which also lists ``verdicts``: the
        run's days as the read model judges them now, (day, verdict, note), in the words ``status`` uses.
        Returns what was sent.
        """
        held, self._held = self._held, []
        if not held or not self._remote:
            return None
        if len(held) == 1:  # a group of one is the alert itself
            self._deliver(held[0], self._remote)
            return held[0]
        counts = _counts(self.sent)
        summary = redacted(
            run_summary_alert(
                run_id, held, counts, first_error_sent=self._first_error_sent, verdicts=verdicts
            )
        )
        self.summary = summary
        self._deliver(summary, self._remote)
        return summary

    @property
    def errors(self) -> int:
        return sum(1 for a in self.sent if a.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for a in self.sent if a.severity == "warning")

    @property
    def delivery_failed(self) -> bool:
        return bool(self.failures)

    @property
    def _remote(self) -> list[AlertSink]:
        return [s for s in self.sinks if s.name != LogSink.name]

    def _deliver(self, alert: Alert, sinks: Sequence[AlertSink]) -> None:
        for sink in sinks:
            try:
                sink.send(alert)
            except AlertDeliveryError as exc:
                self._failed(sink, alert, str(exc))
            except Exception as exc:  # a broken sink must not mask the failure being reported
                self._failed(sink, alert, describe_error(exc), exc_info=True)

    def _failed(self, sink: AlertSink, alert: Alert, error: str, *, exc_info: bool = False) -> None:
        self.failures.append(DeliveryFailure(sink.name, alert, error))
        log.error(
            "alert delivery to %s failed; the alert was: %s — delivery error: %s",
            sink.name,
            alert.text(),
            error,
            exc_info=exc_info,
        )


#: lines a run summary lists at most (a Teams card shows about 3,000 characters)
SUMMARY_LINES = 25


def _counts(alerts: Sequence[Alert]) -> dict[str, int]:
    counts = {"error": 0, "warning": 0, "info": 0}
    for a in alerts:
        counts[a.severity] += 1
    return counts


def run_summary_alert(
    run_id: str,
    held: Sequence[Alert],
    counts: dict[str, int],
    *,
    first_error_sent: bool,
    verdicts: Sequence[tuple[date, str, str]] = (),
) -> Alert:
    """One alert that lists ``held`` (each with its day, step and rerun command), most severe first, then
    the run's days by verdict (each day that is not ok with its verdict and why)."""
    rank = {"error": 0, "warning": 1, "info": 2}
    ordered = sorted(held, key=lambda a: (rank[a.severity], a.day or date.min, a.step or ""))
    lines = [_summary_line(a) for a in ordered[:SUMMARY_LINES]]
    if len(ordered) > SUMMARY_LINES:
        lines.append(f"… and {len(ordered) - SUMMARY_LINES} more: {command_head()} runs show {run_id}")
    worst = ordered[0].severity if ordered else "info"
    if first_error_sent:
        worst = "error"
    parts = [f"{counts['error']} error(s)", f"{counts['warning']} warning(s)"]
    if counts["info"]:
        parts.append(f"{counts['info']} notice(s)")
    intro = "this run: " + ", ".join(parts)
    if first_error_sent:
        intro += " (the first error was sent on its own)"
    if verdicts:
        tally: dict[str, int] = {}
        for _, word, _ in verdicts:
            tally[word] = tally.get(word, 0) + 1
        lines.append("days now: " + ", ".join(f"{n} {word}" for word, n in tally.items()))
        shown = [(d, word, note) for d, word, note in verdicts if word != "ok"][:SUMMARY_LINES]
        lines.extend(f"- {d.isoformat()} {word}: {_shorten(note, 200)}" for d, word, note in shown)
    return Alert(
        worst,
        "run summary",
        intro + "\n" + "\n".join(lines),
        run_id,
        figures={"errors": str(counts["error"]), "warnings": str(counts["warning"])},
    )


def _summary_line(alert: Alert) -> str:
    where = " ".join(x for x in (alert.day.isoformat() if alert.day else "", alert.step or "") if x)
    line = f"- {alert.label} {alert.title}" + (f" ({where})" if where else "") + ": "
    line += _shorten(alert.message, 200)
    if alert.rerun:
        line += f" — rerun: {alert.rerun}"
    return line


def _shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, redacted before and after the cut (:func:`clip`)."""
    return clip(text, limit)


__all__ = [
    "Alert",
    "AlertDeliveryError",
    "AlertKind",
    "AlertSink",
    "Alerter",
    "DeliveryFailure",
    "DeliveryPolicy",
    "LogSink",
    "Severity",
    "describe_error",
    "recovered_alert",
    "run_summary_alert",
]
