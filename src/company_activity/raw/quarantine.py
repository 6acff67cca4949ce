"""The usage records a day's raw run keeps out for the project's own limits (``docs/usage-api-policy.md``).

A record that keeps the API's contract but breaks a limit the project adds (an id longer than 256
characters, only whitespace, holding NUL or a lone surrogate; a count above 2^63 - 1) is *quarantined*:
:class:`DayQuarantine` collects them page by page while the day is staged (each with its page, its index in
the page, its reason and a short escaped excerpt of its company id), the landing writes them to
``_quarantine.json`` beside the raw pages before the manifest (:func:`document`), and the usage step
publishes the rest of the day while they stay within :data:`~..sources.usage.contract.QUARANTINE_MAX_FRACTION`
of its records (:meth:`DayQuarantine.exceeds`).

The spec's one-record-per-company rule still holds for a quarantined record whose company id is itself
valid (a count over the limit): another record of that company on the day is a conflict
(:meth:`DayQuarantine.clashing`), and the day fails as any conflict does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from ..sources.usage.contract import Quarantined, excerpt

__all__ = ["DETAILS_MAX", "QUARANTINE_FILE", "DayQuarantine", "QuarantinedRecord", "page_number"]

#: the quarantine file of a raw run, beside its pages (written before ``_manifest.json``)
QUARANTINE_FILE = "_quarantine.json"
#: quarantined records kept in detail per day (the file, ``ops.usage_quarantine``); beyond, only counted
DETAILS_MAX = 10_000


def page_number(name: str) -> int:
    """The page number of a raw page's file name (``page-00003.json`` -> 3; 0 when it has none)."""
    digits = name.removeprefix("page-").removesuffix(".json")
    return int(digits) if digits.isdigit() else 0


@dataclass(frozen=True)
class QuarantinedRecord:
    """One quarantined record of a day: where it is in the raw run, and why it was kept out."""

    page: int  # 1-based page number
    file: str  # the raw page's file name (``page-00003.json``)
    record: int  # 0-based index within the page
    field: str  # the field over the limit
    reason: str  # ``field 'company_id' is 300 characters long, more than the 256 a company id may have``
    where: str  # ``record 17 (company_id "C0000017xx...")``
    excerpt: str  # the company id, short, escaped, redacted

    @property
    def label(self) -> str:
        """``page 3, record 17 (company_id "..."): field 'company_id' is 300 characters long, ...``."""
        return f"page {self.page}, {self.where}: {self.reason}"

    def as_json(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "file": self.file,
            "record": self.record,
            "field": self.field,
            "reason": self.reason,
            "excerpt": self.excerpt,
        }


class DayQuarantine:
    """The quarantined records of one day's raw run, in page order (the first :data:`DETAILS_MAX`)."""

    def __init__(self) -> None:
        self.count = 0
        self.records: list[QuarantinedRecord] = []
        #: valid company ids whose record is quarantined (a count over the limit) -> its counts
        self._ids: dict[str, tuple[int, int]] = {}
        self._clashes: set[str] = set()

    def __len__(self) -> int:
        return self.count

    def add(self, page: int, file: str, items: Sequence[Quarantined]) -> None:
        """The quarantined records of one page (``items``, from the contract's parse)."""
        self.count += len(items)
        for q in items:
            if len(self.records) < DETAILS_MAX:
                self.records.append(
                    QuarantinedRecord(page, file, q.index, q.field, q.reason, q.where, q.excerpt)
                )
            if q.company_id is not None:
                seen = self._ids.setdefault(q.company_id, q.counts)
                if seen != q.counts:
                    self._clashes.add(q.company_id)

    def clashing(self, accepted: Iterable[tuple[str, int, int]]) -> list[str]:
        """The companies with two different records on the day, one of them quarantined (at most 10,
        as excerpts); ``accepted`` are the day's accepted records (read only when it can matter)."""
        clashes = set(self._clashes)
        if self._ids:
            clashes.update(cid for cid, _users, _events in accepted if cid in self._ids)
        return [excerpt(cid) for cid in sorted(clashes)[:10]]

    def share(self, accepted: int) -> float:
        """The quarantined share of the day's records (``accepted`` + quarantined)."""
        total = accepted + self.count
        return self.count / total if total else 0.0

    def exceeds(self, accepted: int, max_fraction: float) -> bool:
        """Whether the day must fail: more than ``max_fraction`` of its records quarantined, or none left."""
        return self.count > 0 and (accepted == 0 or self.share(accepted) > max_fraction)

    def first(self, n: int = 3) -> str:
        """The first ``n`` quarantined records as ``page P, record R (...): reason``, ``; ``-separated."""
        return "; ".join(r.label for r in self.records[:n])


def document(
    quarantine: DayQuarantine, day: date, run_id: str, *, accepted: int, max_fraction: float
) -> bytes:
    """The ``_quarantine.json`` of a raw run: the policy's figures and every record kept in detail."""
    doc = {
        "date": day.isoformat(),
        "run_id": run_id,
        "policy": "docs/usage-api-policy.md",
        "max_fraction": max_fraction,
        "accepted": accepted,
        "quarantined": quarantine.count,
        "truncated": quarantine.count > len(quarantine.records),
        "records": [r.as_json() for r in quarantine.records],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
