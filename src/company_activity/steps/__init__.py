"""The three steps of the master pipeline, one protocol: ``run(context, days) -> StepResult``.

- :mod:`.ingest_crm` — the CRM snapshot of each day from the lake into staging (``ingest_crm``);
- :mod:`.ingest_usage` — each day's API usage: raw pages landed in the lake, then staging (``ingest_usage``);
- :mod:`.build` — ``analytics.company_daily_activity`` for the days the gate lets through (``build``);
- :mod:`.checks` — the volume checks held before the build, and the recovery notices.

A step records each day's outcome in the ledger (:class:`~..run.context.RunContext`),
alerts its failures and returns what it did; it never calls another step (the runner chains them), so
each is callable alone by the CLI, the Dagster adapter and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..run.context import RunContext


@dataclass
class StepResult:
    """What a step did: the days it completed, and the days whose analytics rows its changes affect."""

    done: set[date] = field(default_factory=set)
    affected: set[date] = field(default_factory=set)


class StepUnit(Protocol):
    def run(self, context: RunContext, days: Sequence[date]) -> StepResult: ...
