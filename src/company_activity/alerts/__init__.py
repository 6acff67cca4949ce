"""Alerts: what went wrong, sent to every configured sink.

A sink is anything with ``send(alert)``. The log sink is always on; Teams and e-mail sinks join it when
configured. Delivery failures are logged and never replace the error being reported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, Protocol

log = logging.getLogger("company_activity.alerts")

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Alert:
    """One alert. ``key`` identifies the failure so the same one is sent once per run."""

    severity: Severity
    title: str
    message: str
    run_id: str
    day: date | None = None
    step: str | None = None
    rerun: str | None = None
    figures: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.title, self.day.isoformat() if self.day else None, self.step)

    def text(self) -> str:
        parts = [f"[{self.severity.upper()}] {self.title}"]
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


class AlertSink(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


class LogSink:
    """Writes alerts to the log (always on)."""

    name = "log"

    def send(self, alert: Alert) -> None:
        level = {"error": logging.ERROR, "warning": logging.WARNING}.get(alert.severity, logging.INFO)
        log.log(level, "ALERT %s", alert.text())


class Alerter:
    """Sends each distinct alert once per run to every sink; a failing sink never hides the alert."""

    def __init__(self, sinks: Sequence[AlertSink]):
        self.sinks = list(sinks)
        self.sent: list[Alert] = []
        self._keys: set[tuple[str, str | None, str | None]] = set()

    def send(self, alert: Alert) -> None:
        if alert.key in self._keys:
            return
        self._keys.add(alert.key)
        self.sent.append(alert)
        for sink in self.sinks:
            try:
                sink.send(alert)
            except Exception as exc:  # a broken sink must not mask the failure being reported
                log.error("alert delivery to %s failed: %s: %s", sink.name, type(exc).__name__, exc)
