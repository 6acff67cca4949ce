"""The run's vocabulary: step names, statuses and check outcomes as types, and the one rerun hint.

Every place that names a step, a status or a command to rerun uses these (the ledger rows, the alerts,
``status``/``runs`` output and the UI read the same strings).
"""

from __future__ import annotations

import shlex
from datetime import date
from typing import Final, Literal, TypeAlias

Step: TypeAlias = Literal["ingest_crm", "ingest_usage", "build"]
STEP_CRM: Final = "ingest_crm"
STEP_USAGE: Final = "ingest_usage"
STEP_BUILD: Final = "build"
STEPS: tuple[Step, ...] = (STEP_CRM, STEP_USAGE, STEP_BUILD)

#: a step's outcome for one day (``ops.run_steps.status``); "run" rows use the same values
StepStatus: TypeAlias = Literal[
    "running", "succeeded", "warning", "failed", "skipped", "pending", "interrupted"
]
DONE: tuple[str, ...] = ("succeeded", "warning")

#: a run's final status (``ops.runs.status``)
RunStatus: TypeAlias = Literal["running", "succeeded", "failed", "interrupted"]

#: a quality check's outcome (``ops.quality_results.status``)
CheckStatus: TypeAlias = Literal["pass", "warn", "fail"]

#: a usage day's status (``ops.usage_days.status``)
UsageDayStatus: TypeAlias = Literal["complete", "pending", "failed", "lost"]

HintCommand: TypeAlias = Literal["run", "rerun", "build", "backfill", "status", "verbatim"]


def is_step(name: str) -> bool:
    return name in STEPS


_config_file: str | None = None


def use_config_file(path: str | None) -> None:
    """Make every suggested command carry ``--config PATH`` (the settings file this process runs with)."""
    global _config_file
    _config_file = path


def config_file_in_use() -> str | None:
    """The settings file this process runs with (as given on the command line), or None."""
    return _config_file


def command_head() -> str:
    """``company-activity``, with ``--config PATH`` when the settings came from a file."""
    return "company-activity" + (f" --config {shlex.quote(_config_file)}" if _config_file else "")


def rerun_hint(
    command: HintCommand,
    day: date | None = None,
    *,
    end: date | None = None,
    from_step: str | None = None,
    verbatim: str | None = None,
) -> str:
    """The command line that redoes something, as alerts, ``status``, ``runs`` and the UI show it.

    ``rerun_hint("run", d)`` -> ``company-activity run --date D``; ``("rerun", d, from_step=s)`` ->
    ``... rerun --date D --from-step S``; ``("build"|"backfill", start, end=e)`` -> ``... --start S --end E``;
    ``("status", start, end=e)`` -> ``... status S - E``; ``("verbatim", verbatim=cmd)`` -> ``... cmd``.
    """
    head = command_head()
    if command == "verbatim":
        return f"{head} {verbatim or ''}".rstrip()
    if day is None:
        return f"{head} {command}"
    if command == "run":
        return f"{head} run --date {day.isoformat()}"
    if command == "rerun":
        return f"{head} rerun --date {day.isoformat()}" + (f" --from-step {from_step}" if from_step else "")
    last = end or day
    if command == "status":
        return f"{head} status {day.isoformat()} - {last.isoformat()}"
    return f"{head} {command} --start {day.isoformat()} --end {last.isoformat()}"
