"""Deterministic synthetic data: the ground truth behind the API simulator, the demo and the tests.

Everything here is a pure function of ``(seed, company index, day)``: no state is kept and nothing
depends on which days were asked for before, so any day is produced in O(companies) and a page of the
API in O(page). Randomness comes from a splitmix64 integer hash, not from ``random.Random``.

The population is built from blocks of 40 companies. Within every 40 consecutive company indices each
of the 40 *slots* below appears exactly once (the slot is ``(index * m + o) % 40`` with ``m`` coprime to
40, both picked by the seed), so the proportions are exact whenever ``companies`` is a multiple of 40:

======================  =====  ==========================================================================
kind                    share  behaviour
======================  =====  ==========================================================================
steady                  50 %   active on most days; weekends clearly lower (fewer active, fewer users)
sporadic                15 %   active on 15-40 % of weekdays, half that at weekends
silent spells           15 %   steady, but every 24 days silent for 8-12 days in a row; the phases are
                               spread so that any 14-day window holds several 7-day silences
joiner                  7.5 %  steady from its join day on (``epoch + 1 … epoch + 42``); absent from the
                               CRM and from usage before that
renamer                 5 %    steady; its name changes every 28-56 days (from that day on)
never active            5 %    in the CRM, never any usage
usage only              2.5 %  steady usage, never in the CRM
======================  =====  ==========================================================================

**Seasonality.** In the default world (``seasonality="companies"``) weekends are quieter in two ways:
fewer companies are active (steady ones on 70 % of weekend days instead of 96 %, sporadic ones half as
often) and those that are have fewer users (:data:`_SEASON`), so the day's record count drops by about a
quarter on Saturdays. With ``seasonality="users"`` (the demo's world) companies are as active every day
and the weekday pattern is in their user counts alone, and sporadic companies are active on a cadence
(every 4th day, their phases spread) instead of at random: the weekend dip shows in the active users,
while the record count stays level: steady companies take a day off on 1.5 % of days (not 4 %), so the
count moves by a few percent from day to day (days off, silent spells, joiners).

Company ids are ``C0000042`` (sorting like the index). Names look like ``Acme Analytics 0042``; about one
company in ten carries an awkward name (commas, quotes, a newline, a spreadsheet formula, SQL) so that
CSV quoting and "values are data" are exercised. ``last_contact_at`` is written in a per-company style:
``Z``, ``+00:00``, other offsets, no offset (taken as UTC) or a date alone (midnight UTC).
"""

from __future__ import annotations

import csv
import io
import math
import threading
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..storage import Lake

__all__ = [
    "CRM_COLUMNS",
    "KINDS",
    "SEASONALITIES",
    "CrmRecord",
    "SyntheticData",
    "UsageRecord",
    "company_id",
    "company_index",
]

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_K_INDEX = 0xD6E8FEB86659FD93
_K_DAY = 0xA0761D6478BD642F
_K_CONTACT = 0xE7037ED1A0B428DB
_K_CYCLE = 0x8EBC6AF09C88C6E3


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit integer hash."""
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


# -- the population ---------------------------------------------------------------------------------------
STEADY, SPORADIC, SPELLS, JOINER, RENAMER, NEVER_ACTIVE, USAGE_ONLY = range(7)
KINDS: tuple[str, ...] = (
    "steady",
    "sporadic",
    "silent_spells",
    "joiner",
    "renamer",
    "never_active",
    "usage_only",
)
_BLOCK = 40
_SLOT_COUNTS = (
    (STEADY, 20),
    (SPORADIC, 6),
    (SPELLS, 6),
    (JOINER, 3),
    (RENAMER, 2),
    (NEVER_ACTIVE, 2),
    (USAGE_ONLY, 1),
)
_SLOT_KIND: tuple[int, ...] = tuple(kind for kind, n in _SLOT_COUNTS for _ in range(n))
_SPELLS_FIRST_SLOT = _SLOT_KIND.index(SPELLS)
_SPELLS_PER_BLOCK = dict(_SLOT_COUNTS)[SPELLS]
_SPORADIC_FIRST_SLOT = _SLOT_KIND.index(SPORADIC)
_SPORADIC_PER_BLOCK = dict(_SLOT_COUNTS)[SPORADIC]
#: in the "users" world a sporadic company is active every this many days (25 %), the phases spread
_SPORADIC_CADENCE = 4
assert len(_SLOT_KIND) == _BLOCK
_COPRIME_40 = (1, 3, 7, 9, 11, 13, 17, 19, 21, 23, 27, 29, 31, 33, 37, 39)

JOIN_SPAN_DAYS = 42  # joiners join on epoch + 1 … epoch + JOIN_SPAN_DAYS
SPELL_PERIOD = 24  # a silent-spells company is silent for 8-12 of every 24 days
_HP_CHUNK = 512  # per-company hashes are cached in chunks of this many companies …
_HP_CACHE_CHUNKS = 2048  # … up to this many chunks (8 MiB, a million companies)
_SPELL_PHASE_STEP = 5  # coprime to SPELL_PERIOD: consecutive spell companies get spread phases

# activity thresholds out of 65536
_STEADY_WEEKDAY = int(0.96 * 65536)
_STEADY_WEEKEND = int(0.70 * 65536)
_STEADY_CALM = int(0.985 * 65536)  # the "users" world: every day, few days off (a level record count)
# users multiplier by weekday (Mon … Sun): weekends clearly lower
_SEASON = (1.05, 1.0, 1.0, 0.98, 0.9, 0.4, 0.35)
# base active users per company: log-uniform over 1 … 400
_BASE_USERS: tuple[float, ...] = tuple(math.exp(math.log(400.0) * k / 255.0) for k in range(256))
#: what the weekday seasonality changes (see the module's doc): "companies" (fewer companies active at
#: weekends, with fewer users: the record count dips) or "users" (the user counts only: it stays level)
SEASONALITIES: tuple[str, ...] = ("companies", "users")

_PREFIXES = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Gringotts",
    "Oceanic",
    "Aperture",
    "Massive",
)
_SUFFIXES = (
    "Analytics",
    "Labs",
    "Systems",
    "Industries",
    "Software",
    "Logistics",
    "Health",
    "Media",
    "Foods",
    "Dynamics",
    "Partners",
    "Robotics",
)
_SPECIAL_NAMES = (
    "Smith, Jones & Partners {n}",
    'The "Quoted" Company {n}',
    "O'Brien's Bakery, Ltd. {n}",
    'Comma, "Quote" and Co {n}',
    "Müller & Söhne GmbH {n}",
    "Line One\nLine Two {n}",
    '=HYPERLINK("http://example.com") {n}',
    "'); drop table x; -- {n}",
)
_COUNTRIES: tuple[str | None, ...] = (
    "US",
    "US",
    "GB",
    "DE",
    "FR",
    "NL",
    "SE",
    "ES",
    "IN",
    "BR",
    "JP",
    "AU",
    "CA",
    None,
)
_INDUSTRIES: tuple[str | None, ...] = (
    "saas",
    "fintech",
    "retail",
    "healthcare",
    "manufacturing",
    "education",
    "media",
    "logistics",
    "gaming",
    "public-sector",
    None,
)
# how last_contact_at is written in the CSV: an offset, "Z", no offset (UTC) or a date alone
_CONTACT_STYLES: tuple[timezone | str, ...] = (
    "Z",
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
    "naive",
    "date",
    timezone(timedelta(hours=1)),
)
CRM_COLUMNS = ("company_id", "name", "country", "industry_tag", "last_contact_at")


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One company's usage on one day, as the API serves it."""

    company_id: str
    active_users: int
    events: int


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """One company in a CRM snapshot. ``last_contact_at`` is timezone-aware UTC."""

    company_id: str
    name: str | None
    country: str | None
    industry_tag: str | None
    last_contact_at: datetime | None


def company_id(index: int) -> str:
    """The id of company ``index``: ``C`` and seven digits (more for indices of ten million or beyond)."""
    return f"C{index:07d}"


def company_index(cid: str) -> int:
    """The index of a company id made by :func:`company_id`; ``ValueError`` for any other id."""
    if len(cid) < 8 or cid[0] != "C" or not cid[1:].isdigit():
        raise ValueError(f"not a synthetic company id: {cid!r}")
    return int(cid[1:])


class SyntheticData:
    """The synthetic world: usage and CRM snapshots for any day, deterministic under ``seed``."""

    def __init__(
        self,
        *,
        seed: int = 7,
        companies: int = 200,
        epoch: date = date(2026, 1, 1),
        seasonality: str = "companies",
    ) -> None:
        if companies < 0:
            raise ValueError("companies must be >= 0")
        if seasonality not in SEASONALITIES:
            raise ValueError(f"seasonality must be one of {', '.join(SEASONALITIES)}, got {seasonality!r}")
        self.seed = seed
        self.companies = companies
        self.epoch = epoch
        self.seasonality = seasonality
        #: whether fewer companies are active at weekends (else only their user counts are lower)
        self._quiet_weekends = seasonality == "companies"
        self._key = _mix(seed & _M64)
        h = _mix(self._key ^ 0x5EED)
        self._mult = _COPRIME_40[h % len(_COPRIME_40)]
        self._off = (h >> 8) % _BLOCK
        self._phase_off = (h >> 16) % SPELL_PERIOD
        self._special_off = (h >> 24) % 10
        self._epoch_ord = epoch.toordinal()
        self._hp_cache: dict[int, array[int]] = {}
        self._hp_lock = threading.Lock()

    def _steady_threshold(self, weekend: bool) -> int:
        """Out of 65536, the chance that a steady company (or one between silent spells) is active."""
        if not self._quiet_weekends:
            return _STEADY_CALM
        return _STEADY_WEEKEND if weekend else _STEADY_WEEKDAY

    # -- per company --------------------------------------------------------------------------------------
    def _hp(self, index: int) -> int:
        x = ((self._key ^ ((index * _K_INDEX) & _M64)) + _GOLDEN) & _M64  # _mix, inlined
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        return x ^ (x >> 31)

    def _slot(self, index: int) -> int:
        return (index * self._mult + self._off) % _BLOCK

    def kind(self, index: int) -> str:
        """The behaviour of company ``index``: one of :data:`KINDS`."""
        return KINDS[_SLOT_KIND[self._slot(index)]]

    def join_day(self, index: int) -> date | None:
        """The first day a joiner exists (in the CRM and in usage); ``None`` for every other kind."""
        if _SLOT_KIND[self._slot(index)] != JOINER:
            return None
        return date.fromordinal(self._join_ord(self._hp(index)))

    def _join_ord(self, hp: int) -> int:
        return self._epoch_ord + 1 + (hp >> 32) % JOIN_SPAN_DAYS

    def _values(self, index: int, ordinal: int, dow: int) -> tuple[int, int] | None:
        """(active_users, events) of company ``index`` on day ``ordinal`` (weekday ``dow``), or None."""
        slot = (index * self._mult + self._off) % _BLOCK
        kind = _SLOT_KIND[slot]
        if kind == NEVER_ACTIVE:
            return None
        hp = _mix(self._key ^ ((index * _K_INDEX) & _M64))
        if kind == JOINER and ordinal < self._epoch_ord + 1 + (hp >> 32) % JOIN_SPAN_DAYS:
            return None
        hd = _mix(hp ^ ((ordinal * _K_DAY) & _M64))
        weekend = dow >= 5 and self._quiet_weekends
        if kind == SPORADIC:
            if not self._quiet_weekends:  # every 4th day, the phases spread: a level count
                rank = (index // _BLOCK) * _SPORADIC_PER_BLOCK + slot - _SPORADIC_FIRST_SLOT
                threshold = 65536 if (ordinal + rank) % _SPORADIC_CADENCE == 0 else 0
            else:
                threshold = 9830 + ((hp >> 24) & 0xFF) * 64  # 15 % … 40 % of weekdays
                if weekend:
                    threshold >>= 1
        else:
            if kind == SPELLS:
                rank = (index // _BLOCK) * _SPELLS_PER_BLOCK + slot - _SPELLS_FIRST_SLOT
                shifted = ordinal + (rank * _SPELL_PHASE_STEP + self._phase_off) % SPELL_PERIOD
                silent = 8 + _mix(hp ^ ((shifted // SPELL_PERIOD) * _K_CYCLE & _M64)) % 5
                if shifted % SPELL_PERIOD < silent:
                    return None
            threshold = self._steady_threshold(weekend)
        if (hd & 0xFFFF) >= threshold:
            return None
        noise = 0.75 + ((hd >> 16) & 0xFFFF) / 131072.0  # 0.75 … 1.25
        users = int(_BASE_USERS[(hp >> 8) & 0xFF] * _SEASON[dow] * noise + 0.5)
        if users < 1:
            users = 1
        factor = (5 + (hp >> 16) % 46) * (0.8 + ((hd >> 32) & 0xFFFF) / 163840.0)  # ~5 … 50 per user
        factor = 5.0 if factor < 5.0 else 50.0 if factor > 50.0 else factor
        events = int(users * factor)
        if (hd >> 56) == 0:  # ~1 in 256: only integrations were busy, nobody logged in
            return 0, max(1, events // 10)
        return users, events

    # -- usage ---------------------------------------------------------------------------------------------
    def _hp_chunk(self, chunk: int) -> array[int]:
        """The per-company hashes of one chunk of companies, computed once and kept (bounded)."""
        hps = self._hp_cache.get(chunk)
        if hps is None:
            first = chunk * _HP_CHUNK
            hps = array("Q", map(self._hp, range(first, min(first + _HP_CHUNK, self.companies))))
            with self._hp_lock:
                if len(self._hp_cache) >= _HP_CACHE_CHUNKS:
                    del self._hp_cache[next(iter(self._hp_cache))]
                self._hp_cache[chunk] = hps
        return hps

    def _iter_values(self, day: date, start_index: int) -> Iterator[tuple[int, int, int]]:
        """(index, active_users, events) for every active company with index >= start_index.

        The body of :meth:`_values`, inlined with everything hoisted: this loop is what serves a page.
        """
        ordinal = day.toordinal()
        dow = day.weekday()
        weekend = dow >= 5 and self._quiet_weekends
        cadence = not self._quiet_weekends  # sporadic companies on a cadence (the "users" world)
        season = _SEASON[dow]
        steady_threshold = self._steady_threshold(weekend)
        day_key = (ordinal * _K_DAY) & _M64
        mult, off = self._mult, self._off
        join_base = self._epoch_ord + 1
        phase_off = self._phase_off
        slot_kind, base_users, mix = _SLOT_KIND, _BASE_USERS, _mix
        m64, golden = _M64, _GOLDEN
        position, end = max(0, start_index), self.companies
        while position < end:
            chunk = position // _HP_CHUNK
            hps = self._hp_chunk(chunk)
            first = chunk * _HP_CHUNK
            chunk_end = min(first + _HP_CHUNK, end)
            for index in range(position, chunk_end):
                slot = (index * mult + off) % _BLOCK
                kind = slot_kind[slot]
                if kind == NEVER_ACTIVE:
                    continue
                hp = hps[index - first]
                if kind == JOINER and ordinal < join_base + (hp >> 32) % JOIN_SPAN_DAYS:
                    continue
                if kind == SPORADIC:
                    if cadence:
                        rank = (index // _BLOCK) * _SPORADIC_PER_BLOCK + slot - _SPORADIC_FIRST_SLOT
                        threshold = 65536 if (ordinal + rank) % _SPORADIC_CADENCE == 0 else 0
                    else:
                        threshold = 9830 + ((hp >> 24) & 0xFF) * 64
                        if weekend:
                            threshold >>= 1
                else:
                    if kind == SPELLS:
                        rank = (index // _BLOCK) * _SPELLS_PER_BLOCK + slot - _SPELLS_FIRST_SLOT
                        shifted = ordinal + (rank * _SPELL_PHASE_STEP + phase_off) % SPELL_PERIOD
                        silent = 8 + mix(hp ^ ((shifted // SPELL_PERIOD) * _K_CYCLE & m64)) % 5
                        if shifted % SPELL_PERIOD < silent:
                            continue
                    threshold = steady_threshold
                # hd = _mix(hp ^ day_key), inlined
                x = ((hp ^ day_key) + golden) & m64
                x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & m64
                x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & m64
                hd = x ^ (x >> 31)
                if (hd & 0xFFFF) >= threshold:
                    continue
                noise = 0.75 + ((hd >> 16) & 0xFFFF) / 131072.0
                users = int(base_users[(hp >> 8) & 0xFF] * season * noise + 0.5)
                if users < 1:
                    users = 1
                factor = (5 + (hp >> 16) % 46) * (0.8 + ((hd >> 32) & 0xFFFF) / 163840.0)
                factor = 5.0 if factor < 5.0 else 50.0 if factor > 50.0 else factor
                events = int(users * factor)
                if (hd >> 56) == 0:
                    yield index, 0, max(1, events // 10)
                else:
                    yield index, users, events
            position = chunk_end

    def iter_usage_from(self, day: date, start_index: int) -> Iterator[tuple[int, UsageRecord]]:
        """(company index, record) of each active company with index >= ``start_index``, in index order."""
        for index, users, events in self._iter_values(day, start_index):
            yield index, UsageRecord(f"C{index:07d}", users, events)

    def usage(self, day: date) -> list[UsageRecord]:
        """The day's true usage records, sorted by company_id: only companies with activity."""
        return [record for _, record in self.iter_usage_from(day, 0)]

    def usage_of(self, index: int, day: date) -> UsageRecord | None:
        """Company ``index``'s record on ``day``, or None when it had no activity."""
        if not 0 <= index < self.companies:
            return None
        v = self._values(index, day.toordinal(), day.weekday())
        return None if v is None else UsageRecord(company_id(index), v[0], v[1])

    # -- CRM -----------------------------------------------------------------------------------------------
    def _name(self, index: int, hp: int, kind: int, ordinal: int) -> str:
        number = f"{index:04d}"
        if kind == RENAMER:
            period = 28 + (hp >> 40) % 29
            version = (ordinal + (hp >> 36) % period) // period
            prefix = _PREFIXES[((hp >> 4) + version) % len(_PREFIXES)]
            suffix = _SUFFIXES[_mix(hp ^ version) % len(_SUFFIXES)]
            return f"{prefix} {suffix} {number}"
        if (index + self._special_off) % 10 == 0:
            template = _SPECIAL_NAMES[(index // 10) % len(_SPECIAL_NAMES)]
            return template.format(n=number)
        return f"{_PREFIXES[(hp >> 4) % len(_PREFIXES)]} {_SUFFIXES[(hp >> 12) % len(_SUFFIXES)]} {number}"

    def _crm_row(self, index: int, ordinal: int) -> tuple[CrmRecord, str] | None:
        """Company ``index`` in the snapshot of day ``ordinal`` and its last_contact_at as written."""
        kind = _SLOT_KIND[self._slot(index)]
        if kind == USAGE_ONLY:
            return None
        hp = self._hp(index)
        join = self._join_ord(hp) if kind == JOINER else None
        if join is not None and ordinal < join:
            return None
        name = self._name(index, hp, kind, ordinal)
        country = _COUNTRIES[(hp >> 44) % len(_COUNTRIES)]
        industry = _INDUSTRIES[(hp >> 48) % len(_INDUSTRIES)]
        contact: datetime | None = None
        text = ""
        if (hp >> 56) % 10 != 0:  # one company in ten was never contacted
            cadence = 5 + (hp >> 20) % 40
            last = ordinal - (ordinal + (hp >> 28) % cadence) % cadence
            if join is None or last >= join:
                style = _CONTACT_STYLES[(hp >> 52) % len(_CONTACT_STYLES)]
                seconds = 0 if style == "date" else _mix(hp ^ ((last * _K_CONTACT) & _M64)) % 86400
                contact = datetime.combine(date.fromordinal(last), datetime.min.time(), UTC) + timedelta(
                    seconds=seconds
                )
                text = _format_contact(contact, style)
        return CrmRecord(company_id(index), name, country, industry, contact), text

    def in_crm(self, index: int, day: date) -> bool:
        """Whether company ``index`` is in the CRM snapshot of ``day``."""
        if not 0 <= index < self.companies:
            return False
        kind = _SLOT_KIND[self._slot(index)]
        if kind == USAGE_ONLY:
            return False
        return kind != JOINER or day.toordinal() >= self._join_ord(self._hp(index))

    def crm_snapshot(self, day: date) -> list[CrmRecord]:
        """The CRM's full snapshot on ``day``, sorted by company_id."""
        ordinal = day.toordinal()
        rows = (self._crm_row(index, ordinal) for index in range(self.companies))
        return [row[0] for row in rows if row is not None]

    def crm_csv(self, day: date) -> bytes:
        """The snapshot of ``day`` as a CSV file (``crm-csv.md``): UTF-8, RFC 4180 quoting, CRLF."""
        ordinal = day.toordinal()
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CRM_COLUMNS)
        for index in range(self.companies):
            row = self._crm_row(index, ordinal)
            if row is None:
                continue
            record, contact = row
            writer.writerow(
                (
                    record.company_id,
                    record.name or "",
                    record.country or "",
                    record.industry_tag or "",
                    contact,
                )
            )
        return buffer.getvalue().encode("utf-8")

    def write_crm_snapshots(
        self, lake: Lake, days: Iterable[date], *, template: str = "crm/crm_daily_{date}.csv"
    ) -> list[str]:
        """Write the CRM snapshot CSV of each day into ``lake``; returns the relative paths written."""
        paths = []
        for day in days:
            rel = template.replace("{date}", day.isoformat())
            lake.write_bytes(rel, self.crm_csv(day))
            paths.append(rel)
        return paths


def _format_contact(value: datetime, style: timezone | str) -> str:
    if style == "Z":
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "naive":
        return value.replace(tzinfo=None).isoformat()
    if style == "date":
        return value.date().isoformat()
    assert isinstance(style, timezone)
    return value.astimezone(style).isoformat()
