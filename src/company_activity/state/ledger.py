"""The run ledger: every run, step and day recorded in ``ops.*``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ..clock import utcnow
from ..redact import redact
from ..warehouse import Warehouse


def new_run_id(now: datetime | None = None) -> str:
    now = now or utcnow()
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass
class StepOutcome:
    step: str
    day: date
    status: str  # succeeded | warning | failed | skipped | pending | interrupted
    rows_loaded: int | None = None
    rows_rejected: int | None = None
    message: str | None = None


class Ledger:
    """Writes ``ops.runs`` and ``ops.run_steps``; each write is its own short transaction."""

    def __init__(self, wh: Warehouse, run_id: str):
        self.wh = wh
        self.run_id = run_id

    def start_run(self, command: str) -> None:
        """Record the run (the caller holds the warehouse lock); runs that died are marked failed."""
        with self.wh.transaction():
            self.wh.run("ops.sql", "interrupt_running", {"run_id": self.run_id, "now": utcnow()})
            self.wh.run(
                "ops.sql",
                "run_start",
                {"run_id": self.run_id, "command": command, "started_at": utcnow()},
            )

    def finish_run(self, status: str, message: str | None) -> None:
        with self.wh.transaction():
            self.wh.run(
                "ops.sql",
                "run_finish",
                {
                    "run_id": self.run_id,
                    "finished_at": utcnow(),
                    "status": status,
                    "message": redact(message) if message else message,
                },
            )

    def interrupt_steps(self, message: str) -> None:
        """Every step of this run still ``running`` becomes ``interrupted`` (a stop or the deadline)."""
        with self.wh.transaction():
            self.wh.run(
                "ops.sql",
                "run_steps_interrupt",
                {"run_id": self.run_id, "now": utcnow(), "message": redact(message)},
            )

    def step_started(self, step: str, day: date) -> datetime:
        started = utcnow()
        self._write_step(step, day, "running", started, None, None, None, None)
        return started

    def step_finished(self, outcome: StepOutcome, started: datetime) -> None:
        self._write_step(
            outcome.step,
            outcome.day,
            outcome.status,
            started,
            utcnow(),
            outcome.rows_loaded,
            outcome.rows_rejected,
            outcome.message,
        )

    def steps_done(self, outcomes: list[StepOutcome]) -> None:
        """Record finished ``outcomes`` (e.g. days a ``build`` skipped) in one transaction."""
        now = utcnow()
        with self.wh.transaction():
            for o in outcomes:
                self._write_step(o.step, o.day, o.status, now, now, o.rows_loaded, o.rows_rejected, o.message)

    def _write_step(
        self,
        step: str,
        day: date,
        status: str,
        started: datetime,
        finished: datetime | None,
        rows_loaded: int | None,
        rows_rejected: int | None,
        message: str | None,
    ) -> None:
        params: dict[str, Any] = {
            "run_id": self.run_id,
            "step": step,
            "day": day,
            "status": status,
            "started_at": started,
            "finished_at": finished,
            "rows_loaded": rows_loaded,
            "rows_rejected": rows_rejected,
            "message": redact(message) if message else message,
        }
        with self.wh.transaction():
            self.wh.run("ops.sql", "step_upsert", params)
