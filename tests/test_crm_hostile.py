"""Hostile CRM snapshots: loads never guess, values no engine can store, long fields, no echo, OS errors.

The streamed load (``warehouse.crm_load``) runs against both engines (real DuckDB files and the
real PostgreSQL); the pipeline tests run the real CLI against the simulator.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from company_activity.cli import main
from company_activity.errors import CrmFileError, StorageError
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.sources.crm import parse_crm_csv, quarantine_csv
from company_activity.storage import Lake, open_lake
from company_activity.warehouse import Warehouse
from company_activity.warehouse.crm_load import CrmLoadSummary, load_crm_snapshot
from company_activity.warehouse.duckdb import DuckDBWarehouse

from . import pg
from .helpers import days

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url
any_wh = pg.any_wh

DAY = date(2026, 1, 2)
REL = "crm/crm_daily_2026-01-02.csv"
QUARANTINE = "quarantine/crm/date=2026-01-02/rejected-r1.csv"
NOW = datetime(2026, 1, 3, 4, 5, 6)
FAKE_SECRET = "AKIAFAKESECRETVALUE0123456789abcdefghijklmnopqrstuvwxyz"


def write_csv(records: Sequence[Sequence[str]], *, terminator: str = "\r\n") -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=terminator, quoting=csv.QUOTE_ALL).writerows(records)
    return out.getvalue().encode("utf-8")


def load(wh: Warehouse, lake: Lake, data: bytes, max_bad_fraction: float = 0.05) -> CrmLoadSummary:
    lake.write_bytes(REL, data)
    return load_crm_snapshot(
        wh,
        lake,
        REL,
        day=DAY,
        run_id="r1",
        now=NOW,
        quarantine=QUARANTINE,
        max_bad_fraction=max_bad_fraction,
    )


def staged(wh: Warehouse) -> list[tuple[object, ...]]:
    return wh.execute(
        "select company_id, company_name, country, industry_tag, last_contact_at, source_line "
        "from stg.crm_daily where snapshot_date = :d order by source_line",
        {"d": DAY},
    )


def quarantined(lake: Lake) -> list[list[str]]:
    return list(csv.reader(io.StringIO(lake.read_bytes(QUARANTINE).decode("utf-8"), newline="")))


# -- (2) loads never guess -------------------------------------------------------------------------------

NASTY = [
    "carriage\rreturn",
    "line\nfeed",
    "crlf\r\ninside",
    'a "quoted" word',
    "comma, inside",
    "emoji 😀 and 🏳️‍🌈",
    "line\u2028separator\u2029paragraph",
    "\u0085next line \x0b vt \x0c ff \x1c fs",
    "tab\tinside",
    "back\\slash 'single'",
    '=HYPERLINK("x")',
    "'); drop table x; --",
    "ünïcødé ✓ 中文 עברית",
    '"""',
    "\r\n\r\n".join(["many", "lines", "here"]),
]


def test_every_rfc4180_character_round_trips_byte_for_byte(any_wh: Warehouse, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    header = ["company_id", "name", "country", "industry_tag"]
    records = [[f"C{i}{v[:3]}", v, v[::-1], f"tag {v}"] for i, v in enumerate(NASTY)]
    summary = load(any_wh, lake, write_csv([header, *records]))
    assert (summary.rows, summary.bad, summary.duplicates) == (len(NASTY), 0, 0)
    got = {r[0]: r[1:4] for r in staged(any_wh)}
    assert got == {cid.strip(): (n.strip(), c.strip(), t.strip()) for cid, n, c, t in records}
    assert not lake.exists(QUARANTINE)


text = st.text(
    st.one_of(
        st.sampled_from(list("\r\n\",' \t😀é\u2028\u2029\u0085")),
        st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    ),
    max_size=20,
)


@st.composite
def snapshots(draw: st.DrawFn) -> list[list[str]]:
    ids = draw(st.lists(text.filter(str.strip), unique_by=str.strip, min_size=1, max_size=8))
    return [[cid, draw(text), draw(text), draw(text)] for cid in ids]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=snapshots(), terminator=st.sampled_from(["\r\n", "\n"]))
def test_any_text_round_trips_on_both_engines(
    any_wh: Warehouse, tmp_path: Path, records: list[list[str]], terminator: str
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    load(
        any_wh,
        lake,
        write_csv([["company_id", "name", "country", "industry_tag"], *records], terminator=terminator),
    )
    got = {r[0]: r[1:4] for r in staged(any_wh)}
    assert got == {
        cid.strip(): (n.strip() or None, c.strip() or None, t.strip() or None) for cid, n, c, t in records
    }


def test_duckdb_bulk_insert_stores_carriage_returns(wh: Warehouse) -> None:
    # main wrote a temporary CSV and DuckDB's reader broke on a CR inside a quoted value
    with wh.transaction():
        wh.run("staging.sql", "crm_load_create")
        wh.bulk_insert("crm_load", ["company_id", "company_name"], [("C1", "a\rb"), ("C2", "c\r\nd")])
        back = wh.execute("select company_id, company_name from crm_load order by company_id")
        wh.run("staging.sql", "crm_load_drop")
    assert back == [("C1", "a\rb"), ("C2", "c\r\nd")]


# -- values an engine cannot store, long fields -----------------------------------------------------------

LONG = 200 * 1024  # over the csv module's default field limit (128 KiB)
HOSTILE = [
    ["company_id", "name", "country", "notes"],
    ["NUL_NAME", "a\x00b", "DE", ""],
    ["NUL\x00ID", "x", "DE", ""],
    ["I" * 257, "long id", "DE", ""],
    ["LONG_NAME", "n" * 4097, "DE", ""],
    ["HUGE_NAME", "h" * LONG, "DE", ""],
    ["NUL_IGNORED", "kept", "DE", "a\x00b"],
    ["HUGE_IGNORED", "kept too", "FR", "z" * LONG],
    ["MAX_ID" + "i" * 250, "n" * 4096, "NL", ""],
    *[[f"OK{i}", f"name {i}", "GB", ""] for i in range(20)],
]
HOSTILE_REASONS = [
    ("2", "name holds a NUL character (\\x00), which the warehouse cannot store"),
    ("3", "company_id holds a NUL character (\\x00), which the warehouse cannot store"),
    ("4", "company_id too long: 257 characters, more than the 256 allowed"),
    ("5", "name too long: 4097 characters, more than the 4096 allowed"),
    ("6", f"name too long: {LONG} characters, more than the 4096 allowed"),
]


def test_unstorable_values_quarantine_their_row_alike_on_both_engines(
    any_wh: Warehouse, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    data = write_csv(HOSTILE, terminator="\n")
    summary = load(any_wh, lake, data, max_bad_fraction=0.5)
    assert (summary.rows, summary.bad, summary.total) == (23, 5, 28)
    ids = [r[0] for r in staged(any_wh)]
    assert ids == ["NUL_IGNORED", "HUGE_IGNORED", "MAX_ID" + "i" * 250, *[f"OK{i}" for i in range(20)]]
    rows = quarantined(lake)
    assert rows[0] == ["line", "reason", "raw"]
    assert [(r[0], r[1]) for r in rows[1:]] == HOSTILE_REASONS
    # the quarantine keeps each rejected record's original text, NUL and all
    assert rows[1][2] == '"NUL_NAME","a\x00b","DE",""'
    assert rows[5][2] == '"HUGE_NAME","' + "h" * LONG + '","DE",""'
    # the in-memory parser agrees with the streamed load
    parsed = parse_crm_csv(data, source="s", max_bad_fraction=0.5)
    assert lake.read_bytes(QUARANTINE) == quarantine_csv(parsed.rejected)
    assert [r.company_id for r in parsed.rows] == ids


def test_a_long_field_in_an_ignored_column_is_ignored() -> None:
    data = write_csv([["company_id", "name", "notes"], ["C1", "a", "x" * LONG], ["C2", "b", ""]])
    result = parse_crm_csv(data, source="s")
    assert [(r.company_id, r.company_name) for r in result.rows] == [("C1", "a"), ("C2", "b")]
    assert result.rejected == []


def test_a_long_field_in_a_used_column_says_it_is_too_long() -> None:
    rows = [["company_id", "name"], ["C1", "a" * LONG], *[[f"C{i}", "b"] for i in range(2, 40)]]
    result = parse_crm_csv(write_csv(rows), source="s")
    [bad] = result.rejected
    assert bad.line == 2
    assert bad.reason == f"name too long: {LONG} characters, more than the 4096 allowed"
    assert "quote" not in bad.reason


# -- duplicates in SQL, a rejected file -------------------------------------------------------------------


def test_duplicates_resolved_in_sql_match_the_parser(any_wh: Warehouse, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    data = (Path(__file__).parent / "fixtures" / "crm" / "duplicates.csv").read_bytes()
    summary = load(any_wh, lake, data)
    parsed = parse_crm_csv(data, source="s")
    assert (summary.rows, summary.duplicates, summary.bad) == (len(parsed.rows), parsed.duplicate_count, 0)
    assert [(r[0], r[1], r[5]) for r in staged(any_wh)] == [
        (r.company_id, r.company_name, r.line) for r in parsed.rows
    ]
    assert lake.read_bytes(QUARANTINE) == quarantine_csv(parsed.rejected)


def test_a_rejected_file_leaves_staging_as_it_was_and_keeps_its_quarantine(
    any_wh: Warehouse, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    load(any_wh, lake, write_csv([["company_id", "name"], ["A", "first"], ["B", "second"]]))
    before = staged(any_wh)
    bad = write_csv([["company_id", "name"], ["A", "changed"], ["", "no id"], ["C", "x\x00"], ["A", "dup"]])
    with pytest.raises(CrmFileError, match=r"2 of 4 rows are bad \(50\.00%\)") as err:
        load(any_wh, lake, bad)
    assert "Traceback" not in str(err.value)
    assert staged(any_wh) == before
    assert [r[:2] for r in quarantined(lake)[1:]] == [
        ["2", "duplicate company_id A (kept line 5)"],
        ["3", "empty company_id"],
        ["4", "name holds a NUL character (\\x00), which the warehouse cannot store"],
    ]


# -- nothing leaks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first_line",
    [
        f"aws_secret_access_key={FAKE_SECRET}",
        f"password,{FAKE_SECRET}",
        f'{{"token": "{FAKE_SECRET}"}}',
        f"-----BEGIN PRIVATE KEY-----{FAKE_SECRET}",
    ],
)
def test_a_first_line_that_is_not_a_header_is_not_echoed(
    first_line: str, wh: Warehouse, tmp_path: Path
) -> None:
    data = f"{first_line}\nC1,a\n".encode()
    with pytest.raises(CrmFileError) as err:
        parse_crm_csv(data, source="s")
    assert FAKE_SECRET[:12] not in str(err.value)
    assert "the header lacks required column(s)" in str(err.value)
    with pytest.raises(CrmFileError) as err2:
        load(wh, Lake(str(tmp_path / "lake")), data)
    assert FAKE_SECRET[:12] not in str(err2.value)


def test_bad_row_reasons_quote_only_a_short_escaped_excerpt() -> None:
    contact = "2026-01-02\x1b[31m" + FAKE_SECRET
    data = write_csv([["company_id", "last_contact_at", "name"], ["C1", contact, "a"], ["C2", "", "b"]])
    result = parse_crm_csv(data, source="s", max_bad_fraction=1.0)
    [bad] = result.rejected
    assert bad.reason.startswith("unparseable last_contact_at '2026-01-02\\x1b[31m")
    assert FAKE_SECRET not in bad.reason
    assert len(bad.reason) < 100


# -- expected OS errors ------------------------------------------------------------------------------------


def test_crm_path_that_is_a_folder_is_a_storage_error_naming_it(wh: Warehouse, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    (tmp_path / "lake" / REL).mkdir(parents=True)
    with pytest.raises(StorageError) as err:
        load_crm_snapshot(
            wh, lake, REL, day=DAY, run_id="r1", now=NOW, quarantine=QUARANTINE, max_bad_fraction=0.05
        )
    message = str(err.value)
    assert message.startswith(f"cannot read the CRM snapshot {tmp_path / 'lake' / REL}: ")
    assert "Is a directory (EISDIR)" in message
    assert "\n" not in message


def test_unwritable_quarantine_folder_is_a_storage_error_naming_it(wh: Warehouse, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    (tmp_path / "lake" / "quarantine" / "crm").mkdir(parents=True)
    (tmp_path / "lake" / "quarantine" / "crm" / "date=2026-01-02").write_text("a file, not a folder")
    data = write_csv([["company_id", "name"], ["A", "a"], ["A", "again"]])
    with pytest.raises(StorageError) as err:
        load(wh, lake, data)
    message = str(err.value)
    assert message.startswith(f"cannot write the CRM quarantine {tmp_path / 'lake' / QUARANTINE}: ")
    assert "\n" not in message
    assert staged(wh) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_a_storage_error_naming_the_path() -> None:
    # /dev/full answers every write with ENOSPC: the real OS error a full disk gives
    from company_activity.warehouse.crm_load import _Guarded

    with open("/dev/full", "wb", buffering=0) as raw:
        target = _Guarded(
            raw, "/lake/quarantine/crm/date=2026-01-02/rejected-r1.csv", "cannot write the CRM quarantine"
        )
        with pytest.raises(StorageError) as err:
            target.write(b"line,reason,raw\r\n")
    assert str(err.value) == (
        "cannot write the CRM quarantine /lake/quarantine/crm/date=2026-01-02/rejected-r1.csv: "
        "No space left on device (ENOSPC)"
    )


# -- memory does not grow with the file --------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys
    from company_activity.sources.crm_records import CrmReader

    class Generated:
        '''A CRM file of about SIZE bytes, made up while it is read (never held whole).'''
        def __init__(self, size):
            self.left = size
            self.n = 0
            self.header = b"company_id,name,country,industry_tag,last_contact_at,notes\\n"
        def read(self, size=-1):
            if self.header:
                out, self.header = self.header, b""
                return out
            if self.left <= 0:
                return b""
            row = b'C%d,"Company %d, \\r\\nLtd",DE,saas,2026-01-02T10:00:00Z,"' + b"x" * 40 + b'"\\n'
            parts = []
            for _ in range(10_000):
                self.n += 1
                parts.append(row % (self.n, self.n))
            out = b"".join(parts)
            self.left -= len(out)
            return out

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    size = int(sys.argv[1])
    before = peak_mib()
    reader = CrmReader(Generated(size), "generated.csv")
    good = sum(1 for r in reader if r.reason is None)
    print(good, reader.total, peak_mib() - before)
    """
)


def test_streaming_parse_memory_does_not_grow_with_the_file() -> None:
    size = 48 * 1024 * 1024
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(size)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    good, total, growth_mib = int(out[0]), int(out[1]), float(out[2])
    assert good == total > 400_000
    assert growth_mib < 24, f"peak RSS grew by {growth_mib:.1f} MiB while reading a 48 MiB file"


# -- through the pipeline ----------------------------------------------------------------------------------

TODAY = date(2026, 11, 12)
RUN_DAY = date(2026, 11, 5)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(
        SimulatorOptions(seed=5, companies=40, today=TODAY, epoch=date(2026, 10, 20))
    ) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, sim: SimulatorServer) -> dict[str, str]:
    lake = tmp_path / "lake"
    sim.data.write_crm_snapshots(open_lake(str(lake)), days(RUN_DAY, RUN_DAY))
    return {
        "COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "COMPANY_ACTIVITY_LAKE": str(lake),
        "COMPANY_ACTIVITY_API_URL": sim.url,
        "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
        "COMPANY_ACTIVITY_START_DATE": RUN_DAY.isoformat(),
        "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
        "COMPANY_ACTIVITY_API_RATE_LIMIT": "500",
    }


def test_a_carriage_return_in_a_quoted_name_loads_through_the_pipeline(env: dict[str, str]) -> None:
    path = Path(env["COMPANY_ACTIVITY_LAKE"]) / "crm" / f"crm_daily_{RUN_DAY.isoformat()}.csv"
    data = path.read_bytes().rstrip(b"\r\n") + b'\r\nCR1,"Carriage\rReturn Ltd",DE,saas,2026-11-01\r\n'
    path.write_bytes(data)
    result = CliRunner().invoke(main, ["run", "--date", RUN_DAY.isoformat()], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with DuckDBWarehouse(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        assert wh.execute("select company_name from stg.crm_daily where company_id = 'CR1'") == [
            ("Carriage\rReturn Ltd",)
        ]


def test_a_folder_as_crm_file_fails_the_crm_step_naming_it(env: dict[str, str]) -> None:
    path = Path(env["COMPANY_ACTIVITY_LAKE"]) / "crm" / f"crm_daily_{RUN_DAY.isoformat()}.csv"
    path.unlink()
    path.mkdir()
    result = CliRunner().invoke(main, ["run", "--date", RUN_DAY.isoformat()], env=env, catch_exceptions=False)
    assert result.exit_code == 1
    assert f"cannot read the CRM snapshot {path}: Is a directory (EISDIR)" in result.output
    assert "Traceback" not in result.output
    with DuckDBWarehouse(env["COMPANY_ACTIVITY_WAREHOUSE"]) as wh:
        assert wh.execute("select count(*) from stg.product_usage_daily")[0][0] > 0
