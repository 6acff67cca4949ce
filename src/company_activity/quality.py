"""Data-quality checks: run on a build's candidate rows before they are published.

A *blocking* check that fails keeps its day out of ``analytics.company_daily_activity`` (the published
rows of that day stay as they were); a non-blocking one is a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from .warehouse import Warehouse


@dataclass(frozen=True)
class CheckResult:
    day: date
    name: str
    status: str  # pass | warn | fail
    blocking: bool
    observed: float | None
    threshold: float
    details: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def check_candidate(wh: Warehouse, *, missing_crm_warn_fraction: float) -> list[CheckResult]:
    """Evaluate the checks on the ``build_candidate`` temporary table, per day."""
    rows = wh.run("quality.sql", "candidate_checks")
    return check_results(rows, missing_crm_warn_fraction=missing_crm_warn_fraction)


def check_results(counts: Iterable[Sequence[Any]], *, missing_crm_warn_fraction: float) -> list[CheckResult]:
    """The checks from the rows of ``candidate_checks`` (also run by the Spark engine, issue 13)."""
    results: list[CheckResult] = []
    for day, rows, dup, null_keys, negative, missing in counts:
        rows = int(rows)

        def strict(name: str, observed: int, what: str, day: date = day) -> CheckResult:
            status = "pass" if observed == 0 else "fail"
            return CheckResult(day, name, status, True, observed, 0, f"{observed} {what}")

        results.append(strict("grain_unique", int(dup), "duplicate (activity_date, company_id) keys"))
        results.append(strict("keys_not_null", int(null_keys), "rows with a NULL key"))
        results.append(strict("counts_not_negative", int(negative), "rows with a negative count"))
        share = (int(missing) / rows) if rows else 0.0
        results.append(
            CheckResult(
                day,
                "missing_from_crm",
                "warn" if share > missing_crm_warn_fraction else "pass",
                False,
                round(share, 6),
                missing_crm_warn_fraction,
                f"{int(missing)} of {rows} companies have usage but are not in the CRM snapshot in effect",
            )
        )
    return results
