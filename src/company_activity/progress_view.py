"""One progress display for a run: its ingestion and its build, with log lines printed above it.

The pipeline reports progress through a callback ``(what, day)``: ``what`` is ``"ingested"`` when a day's
usage step ended and ``"built"`` when a day's build ended (:data:`company_activity.pipeline.Progress`).
:class:`RunProgress` is such a callback. On a terminal it draws two :mod:`rich` bars on stderr (days
ingested of the run's days; days built so far), and while it is drawn whatever goes to stderr — the log
lines — is printed above the bars instead of through them. Without a terminal (a pipe, a file, cron) it
draws nothing and costs nothing.
"""

from __future__ import annotations

import sys
from datetime import date
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["RunProgress"]


class RunProgress:
    """The run's progress bars as a context manager (``days``: how many days the run ingests, when known)."""

    def __init__(
        self,
        days: int | None = None,
        *,
        label: str = "ingesting",
        file: IO[str] | None = None,
        force_terminal: bool | None = None,
    ):
        self.days = days or None
        self.label = label
        target = file if file is not None else sys.stderr
        terminal = force_terminal if force_terminal is not None else target.isatty()
        self.enabled = bool(terminal)
        self._console = Console(file=target, force_terminal=terminal, stderr=file is None)
        self._progress: Progress | None = None
        self._ingest: TaskID | None = None
        self._build: TaskID | None = None
        self.ingested = 0
        self.built = 0

    def __enter__(self) -> RunProgress:
        if not self.enabled:
            return self
        self._progress = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[day]}"),
            TimeElapsedColumn(),
            console=self._console,
            redirect_stderr=True,  # log lines go above the bars
            redirect_stdout=False,
            transient=False,
        )
        self._progress.start()
        self._ingest = self._progress.add_task(self.label, total=self.days, day="")
        self._build = self._progress.add_task("building", total=None, day="", visible=False)
        return self

    def __call__(self, what: str, day: date) -> None:
        if what == "ingested":
            self.ingested += 1
            task = self._ingest
        elif what == "built":
            self.built += 1
            task = self._build
        else:
            return
        if self._progress is None or task is None:
            return
        if task == self._build:
            self._progress.update(task, visible=True, total=max(self.built, self.days or self.ingested))
        self._progress.update(task, advance=1, day=day.isoformat())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            if self._build is not None and self.built:
                self._progress.update(self._build, total=self.built)
            self._progress.stop()
            self._progress = None
