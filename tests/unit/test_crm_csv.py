"""The CRM snapshot CSV parser against its contract (specs/crm-csv.md).

Most cases are files under tests/fixtures/crm/, named for the rule they show; open one to see the case.
"""

from __future__ import annotations

import csv
import gc
import io
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from company_activity.errors import CrmFileError, DataError
from company_activity.sources.crm import (
    CrmBadRowsError,
    CrmParseResult,
    CrmRow,
    RejectedRow,
    parse_crm_csv,
    parse_timestamp,
    quarantine_csv,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "crm"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse_fixture(name: str, **kwargs: float) -> CrmParseResult:
    return parse_crm_csv(fixture(name), source=f"crm/{name}", **kwargs)


def by_id(result: CrmParseResult) -> dict[str, CrmRow]:
    return {row.company_id: row for row in result.rows}


def build_csv(rows: list[str], header: str = "company_id,name,country,industry_tag,last_contact_at") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


# -- encoding and line ends -------------------------------------------------------------------------------


def test_bom_is_tolerated_and_not_part_of_the_first_column() -> None:
    data = fixture("bom.csv")
    assert data.startswith(b"\xef\xbb\xbf")
    result = parse_crm_csv(data, source="crm/bom.csv")
    assert result.rows == [
        CrmRow(2, "C001", "Acme", "DE", None, None),
        CrmRow(3, "C002", "Beta", "FR", None, None),
    ]
    assert result.extra_columns == []


def test_crlf_line_ends() -> None:
    data = fixture("crlf.csv")
    assert data.count(b"\r\n") == 5  # guard: the fixture must keep its CRLF line ends
    result = parse_crm_csv(data, source="crm/crlf.csv")
    assert result.rows == [
        CrmRow(2, "C001", "Acme", "DE", "saas", datetime(2026, 1, 2, 10, 0)),
        # a line break inside quotes is data, kept as written (CRLF here)
        CrmRow(3, "C002", "Beta\r\nGmbH", "FR", "retail", datetime(2026, 1, 3)),
        CrmRow(5, "C003", "Gamma", None, None, None),
    ]
    assert result.total_rows == 3
    assert result.rejected == []


def test_not_utf8_names_the_source_byte_offset_and_line() -> None:
    data = fixture("not_utf8.csv")
    offset = data.index(b"\xfc")  # the latin-1 'ü' of 'Müller'
    with pytest.raises(CrmFileError) as err:
        parse_crm_csv(data, source="crm/not_utf8.csv")
    message = str(err.value)
    assert "crm/not_utf8.csv" in message
    assert "not valid UTF-8" in message
    assert f"byte offset {offset}" in message
    assert "(line 3)" in message


def test_not_utf8_offset_counts_the_bom() -> None:
    data = b"\xef\xbb\xbfcompany_id,name\nC1,\xff\n"
    with pytest.raises(CrmFileError, match=r"byte offset 22 \(line 2\)"):
        parse_crm_csv(data, source="s")


# -- quoting ----------------------------------------------------------------------------------------------


def test_rfc4180_quoting_embedded_comma_quote_and_newline() -> None:
    result = parse_fixture("quoting.csv")
    assert result.rows == [
        CrmRow(2, "C001", "Smith, Jones & Co", "GB", "legal", datetime(2026, 1, 2)),
        CrmRow(3, "C002", 'The "Best" Company', "US", "retail", datetime(2026, 1, 2)),
        CrmRow(4, "C003", "First line\nsecond line", "DE", "saas", datetime(2026, 1, 2)),
        CrmRow(6, "C004", None, None, None, None),
        CrmRow(7, "C005", 'a, "b"\n, c', "FR", "saas, b2b", datetime(2026, 1, 2)),
        CrmRow(9, "C006", "Plain", "NL", "saas", datetime(2026, 1, 2)),
    ]
    assert result.total_rows == 6


def test_malformed_quoting_rejects_the_record_and_reading_goes_on() -> None:
    result = parse_fixture("malformed_quote.csv", max_bad_fraction=1.0)
    assert [r.company_id for r in result.rows] == ["C002"]
    assert result.rows[0].line == 3
    [bad] = result.rejected
    assert bad.line == 2
    assert bad.reason.startswith("malformed CSV (line 2): ")
    assert bad.raw == 'C001,"Acme"Corp,DE'
    assert not bad.duplicate
    assert result.total_rows == 2


def test_runaway_quote_over_the_field_limit_fails_the_file() -> None:
    rows = "".join(f"C{i},company number {i} with a longer name,DE\n" for i in range(2, 5000))
    data = f'company_id,name,country\nC0,a,DE\nC1,"runaway,DE\n{rows}'.encode()
    with pytest.raises(CrmFileError) as err:
        parse_crm_csv(data, source="crm/runaway.csv")
    message = str(err.value)
    assert "crm/runaway.csv: the record starting at line 3 runs on to line " in message
    assert "unbalanced" in message
    assert not isinstance(err.value, CrmBadRowsError)


def test_a_short_malformed_record_over_several_lines_is_only_a_bad_row() -> None:
    data = b'company_id,name,country\nC1,"Acme\nCorp"x,DE\nC2,b,FR\n'
    result = parse_crm_csv(data, source="s", max_bad_fraction=1.0)
    assert [(r.line, r.reason.split(":")[0], r.raw) for r in result.rejected] == [
        (2, "malformed CSV (lines 2-3)", 'C1,"Acme\nCorp"x,DE')
    ]
    assert result.rows == [CrmRow(4, "C2", "b", "FR", None, None)]


def test_malformed_header_fails_the_file() -> None:
    with pytest.raises(CrmFileError, match=r"^CRM file s: the header at line 1 is malformed"):
        parse_crm_csv(b'company_id,"name"x\nC1,a\n', source="s")


def test_old_mac_cr_only_line_ends_fail_the_file() -> None:
    with pytest.raises(CrmFileError) as err:
        parse_crm_csv(b"company_id,name\rC1,a\rC2,b\r", source="s")
    assert str(err.value) == (
        "CRM file s: the header at line 1 is malformed: a carriage return (\\r) outside quotes that does not "
        "end the line (a value holding a CR must be quoted; line ends are LF or CRLF)"
    )


def test_unquoted_carriage_return_is_malformed() -> None:
    # RFC 4180 wants a field holding CR or LF quoted; a bare CR cannot be told from a broken line end
    result = parse_crm_csv(b"company_id,name\nC1,a\rb\nC2,c\n", source="s", max_bad_fraction=1.0)
    assert [(r.line, r.reason.split(":")[0], r.raw) for r in result.rejected] == [
        (2, "malformed CSV (line 2)", "C1,a\rb")
    ]
    assert result.rejected[0].reason.endswith(
        ": a carriage return (\\r) outside quotes that does not end the line "
        "(a value holding a CR must be quoted; line ends are LF or CRLF)"
    )
    assert result.rows == [CrmRow(3, "C2", "c", None, None, None)]


def test_crs_just_before_the_lf_are_part_of_the_line_end() -> None:
    # the csv module ends a record at CR, CRLF or CR CR LF alike; the value itself is intact
    result = parse_crm_csv(b"company_id,name\nC1,a\r\r\nC2,c\n", source="s")
    assert result.rows == [CrmRow(2, "C1", "a", None, None, None), CrmRow(3, "C2", "c", None, None, None)]


def test_unterminated_quote_fails_the_file() -> None:
    with pytest.raises(CrmFileError) as err:
        parse_fixture("unterminated_quote.csv")
    assert "crm/unterminated_quote.csv" in str(err.value)
    assert "line 3" in str(err.value)
    assert "never closed" in str(err.value)


# -- header -----------------------------------------------------------------------------------------------


def test_header_names_case_insensitive_spaces_ignored_any_order() -> None:
    result = parse_fixture("header_case_order.csv")
    assert result.rows == [
        CrmRow(2, "C001", "Acme", "DE", "saas", datetime(2026, 1, 2, 10, 0)),
        CrmRow(3, "C002", "Beta", "FR", "retail", None),
    ]
    assert result.extra_columns == []


def test_company_name_is_an_alias_of_name() -> None:
    result = parse_fixture("alias_company_name.csv")
    assert [(r.company_id, r.company_name, r.country) for r in result.rows] == [
        ("C001", "Acme", "DE"),
        ("C002", "Beta", "FR"),
    ]


def test_absent_optional_columns_give_null() -> None:
    result = parse_fixture("optional_columns_absent.csv")
    assert result.rows == [
        CrmRow(2, "C001", "Acme", None, None, None),
        CrmRow(3, "C002", "Beta", None, None, None),
    ]


def test_missing_required_column_names_it_and_the_source() -> None:
    with pytest.raises(CrmFileError) as err:
        parse_fixture("missing_required_column.csv")
    message = str(err.value)
    assert "crm/missing_required_column.csv" in message
    assert "the header lacks required column(s): name (or company_name)" in message
    assert not isinstance(err.value, CrmBadRowsError)


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("name,country", "company_id"),
        ("country,industry_tag", "company_id, name (or company_name)"),
        ("companyid,company name", "company_id, name (or company_name)"),
    ],
)
def test_missing_required_columns_are_all_named(header: str, missing: str) -> None:
    with pytest.raises(
        CrmFileError, match=re.escape(f"src.csv: the header lacks required column(s): {missing};")
    ):
        parse_crm_csv(f"{header}\nx,y\n".encode(), source="src.csv")


def test_a_recognised_column_twice_fails_the_file() -> None:
    with pytest.raises(CrmFileError) as err:
        parse_fixture("duplicate_header_column.csv")
    message = str(err.value)
    assert "crm/duplicate_header_column.csv" in message
    assert "column name appears more than once" in message
    assert "'name' in column 2 and 'company_name' in column 4" in message


def test_company_id_twice_in_different_case_fails_the_file() -> None:
    with pytest.raises(CrmFileError, match="column company_id appears more than once"):
        parse_crm_csv(b"company_id,name, COMPANY_ID\nC1,a,C1\n", source="s")


def test_extra_columns_are_ignored_and_reported_as_written() -> None:
    result = parse_fixture("extra_columns.csv")
    assert result.extra_columns == ["Notes", " Source System ", "notes"]
    assert result.rows == [
        CrmRow(2, "C001", "Acme", "DE", None, None),
        CrmRow(3, "C002", "Beta", "FR", None, None),
    ]


# -- values -----------------------------------------------------------------------------------------------


def test_values_are_trimmed() -> None:
    result = parse_fixture("trimming.csv")
    assert result.rows == [
        CrmRow(2, "C001", "Acme Corp", "DE", "saas", datetime(2026, 1, 2, 10, 0)),
        CrmRow(3, "C002", "Beta GmbH", "FR", "retail", datetime(2026, 1, 3)),
    ]


def test_empty_values_are_null() -> None:
    data = fixture("empty_values.csv")
    assert b"C003,   ,   ,   ,   \n" in data  # guard: the fixture keeps its blanks
    result = parse_crm_csv(data, source="crm/empty_values.csv")
    assert result.rows == [
        CrmRow(2, "C001", None, None, None, None),
        CrmRow(3, "C002", None, None, None, None),
        CrmRow(4, "C003", None, None, None, None),
        CrmRow(5, "C004", "Acme", "DE", "saas", datetime(2026, 1, 2)),
    ]


def test_formula_and_sql_looking_values_are_kept_verbatim() -> None:
    rows = by_id(parse_fixture("values_are_data.csv"))
    assert rows["C001"].company_name == '=HYPERLINK("x")'
    assert rows["C002"].company_name == "'); drop table x; --"
    assert (rows["C003"].company_name, rows["C003"].country, rows["C003"].industry_tag) == (
        "@SUM(A1:A9)",
        "+cmd|' /C calc'!A0",
        "-1+1",
    )
    # the words NULL / None are text, not missing values
    assert (rows["C004"].company_name, rows["C004"].country, rows["C004"].industry_tag) == (
        "NULL",
        "None",
        "null",
    )
    assert (rows["C005"].company_name, rows["C005"].country, rows["C005"].industry_tag) == (
        "<script>alert(1)</script>",
        "\\N",
        "${jndi:ldap://x}",
    )


# -- last_contact_at --------------------------------------------------------------------------------------


def test_time_zones_are_converted_to_naive_utc() -> None:
    rows = by_id(parse_fixture("timezones.csv"))
    expected = {
        "Z": datetime(2026, 3, 1, 10, 0),
        "PLUS_COLON": datetime(2026, 3, 1, 10, 0),
        "PLUS_COMPACT": datetime(2026, 3, 1, 10, 0),
        "MINUS": datetime(2026, 3, 2, 2, 0),
        "PLUS_HOURS": datetime(2026, 2, 28, 22, 0),
        "NAIVE": datetime(2026, 3, 1, 10, 0),
        "SPACE": datetime(2026, 3, 1, 10, 0),
        "FRACTION": datetime(2026, 3, 1, 10, 0, 0, 123456),
        "FRACTION_SHORT": datetime(2026, 3, 1, 9, 0, 0, 500000),
        "NO_SECONDS": datetime(2026, 3, 1, 10, 0),
        "DATE": datetime(2026, 3, 1, 0, 0),
        "LEAP": datetime(2023, 12, 31, 23, 30),
    }
    assert {k: r.last_contact_at for k, r in rows.items()} == expected
    assert all(r.last_contact_at is not None and r.last_contact_at.tzinfo is None for r in rows.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02t10:00:00z", datetime(2026, 1, 2, 10, 0)),
        ("2026-01-02T10:00:00,25Z", datetime(2026, 1, 2, 10, 0, 0, 250000)),
        ("2026-01-02T10:00:00.1234567891Z", datetime(2026, 1, 2, 10, 0, 0, 123456)),
        ("2026-01-02T10:00:00-0000", datetime(2026, 1, 2, 10, 0)),
        ("2026-01-02T10:00:00+23:59", datetime(2026, 1, 1, 10, 1)),
        ("2026-12-31T23:30:00-01:00", datetime(2027, 1, 1, 0, 30)),
        ("2024-02-29", datetime(2024, 2, 29)),
    ],
)
def test_accepted_timestamp_forms(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-13-01",
        "yesterday",
        "01/02/2026",
        "02.01.2026",
        "2026-02-30",
        "2023-02-29",
        "20260102",  # ISO basic format: fromisoformat takes it, we do not
        "2026-W01-1",  # ISO week date: likewise
        "2026-002",  # ordinal date
        "2026-01-02T10",  # hour only
        "2026-01-02T1000",  # basic time
        "2026-01-02T10:00:00+02:00:30",  # offset with seconds
        "2026-01-02T10:00:00+24:00",
        "2026-01-02T10:00:00+02:60",
        "2026-01-02T10:00:00+2",
        "2026-01-02T10:00:00+",
        "2026-01-02T24:00:00",
        "2026-01-02T10:00:60",
        "2026-01-02T10:00:00.",
        "2026-01-02T10:00:0",
        "2026-01-02T10:00:00 Z",
        "2026-01-02T10:00:00ZZ",
        "2026-01-02X10:00:00",
        "2026-01-02T",
        "2026-01-02T10:00:00+02:00Z",
        "2026-1-2",
        "２０２６-01-02",
        "2026-01-02T10:00:00 UTC",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:00-01:00",  # after year 9999 in UTC
        "1767312000",
    ],
)
def test_rejected_timestamp_forms(text: str) -> None:
    assert parse_timestamp(text) is None
    result = parse_crm_csv(
        build_csv([f'C1,bad,,,"{text}"', "C2,good,,,2026-01-01"]), source="s", max_bad_fraction=1.0
    )
    assert [(r.line, r.reason) for r in result.rejected] == [(2, f"unparseable last_contact_at {text!r}")]


# -- bad rows ---------------------------------------------------------------------------------------------


def test_bad_rows_are_rejected_with_reason_and_physical_line() -> None:
    result = parse_fixture("bad_rows.csv", max_bad_fraction=1.0)
    assert result.rows == [
        CrmRow(2, "C001", "Acme", "DE", "saas", datetime(2026, 1, 2, 10, 0)),
        CrmRow(3, "C002", "Multi\nline\nname", "FR", "retail", datetime(2026, 1, 3)),
        CrmRow(17, "C009", "Good After", "DE", "saas", datetime(2026, 1, 3, 23, 0)),
    ]
    assert [(r.line, r.reason) for r in result.rejected] == [
        (6, "empty company_id"),
        (7, "empty company_id"),
        (8, "unparseable last_contact_at '2026-13-01'"),
        (9, "unparseable last_contact_at 'yesterday'"),
        (10, "unparseable last_contact_at '01/02/2026'"),
        (11, "expected 5 fields, found 6"),
        (12, "expected 5 fields, found 3"),
        (13, "unparseable last_contact_at '2026-02-30'"),
        (15, "empty company_id; unparseable last_contact_at 'never'"),
        (16, "expected 5 fields, found 1"),  # a line of spaces is a record, not an empty line
    ]
    raws = {r.line: r.raw for r in result.rejected}
    assert raws[6] == ",Empty Id,DE,saas,2026-01-02"
    assert raws[11] == "C006,Too Many,DE,saas,2026-01-02,extra"
    assert raws[13] == '"C008","Quoted\nbad",DE,saas,2026-02-30'
    assert raws[16] == "   "
    assert not any(r.duplicate for r in result.rejected)
    assert result.total_rows == 13
    assert result.bad_count == 10
    assert result.duplicate_count == 0


def test_raw_of_a_crlf_record_has_no_line_end() -> None:
    data = b'company_id,name\r\n,"a\r\nb"\r\nC1,x\r\n'
    result = parse_crm_csv(data, source="s", max_bad_fraction=1.0)
    assert result.rejected == [RejectedRow(2, "empty company_id", ',"a\r\nb"')]
    assert result.rows == [CrmRow(4, "C1", "x", None, None, None)]


def test_completely_empty_lines_are_skipped_and_not_counted() -> None:
    result = parse_fixture("blank_lines.csv")
    assert result.rows == [
        CrmRow(4, "C001", "Acme", None, None, None),
        CrmRow(7, "C002", "Beta\n\nTwo", None, None, None),
        CrmRow(11, "C003", "Gamma", None, None, None),
    ]
    assert result.total_rows == 3
    assert result.rejected == []


def test_crlf_empty_lines_are_skipped_too() -> None:
    result = parse_crm_csv(b"company_id,name\r\n\r\nC1,a\r\n\r\n", source="s")
    assert result.rows == [CrmRow(3, "C1", "a", None, None, None)]
    assert result.total_rows == 1


def test_last_line_without_line_end() -> None:
    result = parse_crm_csv(b"company_id,name\nC1,a\nC2,b", source="s")
    assert [(r.line, r.company_id, r.company_name) for r in result.rows] == [(2, "C1", "a"), (3, "C2", "b")]


# -- quarantine -------------------------------------------------------------------------------------------


def test_quarantine_csv_round_trips() -> None:
    result = parse_fixture("bad_rows.csv", max_bad_fraction=1.0)
    data = quarantine_csv(result.rejected)
    assert data.startswith(b"line,reason,raw\r\n")
    back = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert back[0] == ["line", "reason", "raw"]
    assert back[1:] == [[str(r.line), r.reason, r.raw] for r in result.rejected]
    # RFC 4180: a field with a quote or a line break is quoted, its quotes doubled
    assert (
        b'13,unparseable last_contact_at \'2026-02-30\',"""C008"",""Quoted\nbad"",DE,saas,2026-02-30"\r\n'
        in data
    )


def test_quarantine_csv_of_duplicates_and_tricky_text() -> None:
    rejected = [
        RejectedRow(2, "duplicate company_id C1 (kept line 3)", "C1,a", duplicate=True),
        RejectedRow(4, "empty company_id", ' ,"=HYPERLINK(""x"")",\u00fc\r\nnext'),
    ]
    data = quarantine_csv(rejected)
    back = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert back == [
        ["line", "reason", "raw"],
        ["2", "duplicate company_id C1 (kept line 3)", "C1,a"],
        ["4", "empty company_id", ' ,"=HYPERLINK(""x"")",\u00fc\r\nnext'],
    ]
    assert quarantine_csv([]) == b"line,reason,raw\r\n"


# -- the bad-row threshold --------------------------------------------------------------------------------


def rows_with_bad(total: int, bad: int, duplicates: int = 0) -> bytes:
    rows = [f",bad {i},,," for i in range(bad)]
    rows += [f"D,dup {i},,," for i in range(duplicates)]
    rows += [f"C{i},good,,," for i in range(total - bad - duplicates)]
    return build_csv(rows)


def test_exactly_five_percent_bad_passes() -> None:
    result = parse_crm_csv(rows_with_bad(100, 5), source="s")
    assert (result.total_rows, result.bad_count, len(result.rows)) == (100, 5, 95)


def test_just_over_five_percent_bad_fails_with_counts_fraction_and_source() -> None:
    with pytest.raises(CrmBadRowsError) as err:
        parse_crm_csv(rows_with_bad(100, 6), source="lake/crm/crm_daily_2026-01-02.csv")
    message = str(err.value)
    assert "lake/crm/crm_daily_2026-01-02.csv" in message
    assert "6 of 100 rows are bad (6.00%)" in message
    assert "allowed 5.00%" in message
    assert "line 2: empty company_id" in message
    assert isinstance(err.value, CrmFileError)
    assert isinstance(err.value, DataError)
    # the result rides along so the caller can still quarantine what was wrong
    assert err.value.result.bad_count == 6
    assert len(err.value.result.rows) == 94


def test_boundary_with_other_totals() -> None:
    parse_crm_csv(rows_with_bad(20, 1), source="s")  # 5% exactly
    with pytest.raises(CrmBadRowsError, match=r"1 of 19 rows are bad \(5\.26%\)"):
        parse_crm_csv(rows_with_bad(19, 1), source="s")


def test_threshold_is_configurable() -> None:
    assert parse_crm_csv(rows_with_bad(100, 10), source="s", max_bad_fraction=0.1).bad_count == 10
    with pytest.raises(
        CrmBadRowsError, match=r"11 of 100 rows are bad \(11\.00%\), more than the allowed 10\.00%"
    ):
        parse_crm_csv(rows_with_bad(100, 11), source="s", max_bad_fraction=0.1)
    assert parse_crm_csv(rows_with_bad(100, 0), source="s", max_bad_fraction=0.0).bad_count == 0
    with pytest.raises(CrmBadRowsError):
        parse_crm_csv(rows_with_bad(100, 1), source="s", max_bad_fraction=0.0)


@pytest.mark.parametrize("fraction", [-0.01, 1.01, float("nan")])
def test_threshold_out_of_range_is_a_programming_error(fraction: float) -> None:
    with pytest.raises(ValueError, match="max_bad_fraction"):
        parse_crm_csv(rows_with_bad(10, 0), source="s", max_bad_fraction=fraction)


def test_duplicates_do_not_count_as_bad() -> None:
    # 50 rows share company_id D (49 are duplicates) and 5 are bad: 5% bad, the file loads
    result = parse_crm_csv(rows_with_bad(100, 5, duplicates=50), source="s")
    assert (result.total_rows, result.bad_count, result.duplicate_count, len(result.rows)) == (100, 5, 49, 46)


# -- duplicates -------------------------------------------------------------------------------------------


def test_duplicates_latest_wins_null_oldest_tie_later() -> None:
    result = parse_fixture("duplicates.csv")
    assert [(r.line, r.company_id, r.company_name) for r in result.rows] == [
        (3, "LATEST", "second and latest"),
        (5, "NULL_OLDEST", "has a date"),
        (8, "TIE", "second of a tie (same instant)"),
        (10, "BOTH_NULL", "second without date"),
        (11, "UNIQUE", "only once"),
    ]
    assert [(r.line, r.reason, r.duplicate) for r in result.rejected] == [
        (2, "duplicate company_id LATEST (kept line 3)", True),
        (4, "duplicate company_id LATEST (kept line 3)", True),
        (6, "duplicate company_id NULL_OLDEST (kept line 5)", True),
        (7, "duplicate company_id TIE (kept line 8)", True),
        (9, "duplicate company_id BOTH_NULL (kept line 10)", True),
    ]
    assert result.rejected[0].raw == "LATEST,first and older,2026-01-01T00:00:00Z"
    assert (result.total_rows, result.bad_count, result.duplicate_count) == (10, 0, 5)


def test_duplicates_are_compared_after_trimming_and_sorted_among_bad_rows() -> None:
    data = build_csv(
        [
            "C1,first,,,2026-01-02",  # line 2: wins over lines 5-6
            ",bad,,,",  # line 3
            "C2,only,,,",  # line 4
            '" C1 ","second\nname",,,2026-01-01T23:59:59.999999',  # lines 5-6: older, a duplicate
            "c1,other case is another id,,,",  # line 7
        ]
    )
    result = parse_crm_csv(data, source="s", max_bad_fraction=0.5)
    assert [(r.line, r.company_id, r.company_name) for r in result.rows] == [
        (2, "C1", "first"),
        (4, "C2", "only"),
        (7, "c1", "other case is another id"),
    ]
    assert result.rejected == [
        RejectedRow(3, "empty company_id", ",bad,,,"),
        RejectedRow(
            5,
            "duplicate company_id C1 (kept line 2)",
            '" C1 ","second\nname",,,2026-01-01T23:59:59.999999',
            duplicate=True,
        ),
    ]


# -- file-level failures ----------------------------------------------------------------------------------


def test_zero_good_rows_fails_the_file() -> None:
    with pytest.raises(CrmBadRowsError) as err:
        parse_fixture("zero_good_rows.csv", max_bad_fraction=1.0)
    assert "crm/zero_good_rows.csv: no good rows (2 rows, 2 bad)" in str(err.value)
    assert [r.line for r in err.value.result.rejected] == [2, 3]
    # with the default threshold the same file fails on its bad fraction first
    with pytest.raises(CrmBadRowsError, match=r"2 of 2 rows are bad \(100\.00%\)"):
        parse_fixture("zero_good_rows.csv")


@pytest.mark.parametrize(
    "data", [pytest.param(fixture("empty.csv"), id="empty.csv"), b"\xef\xbb\xbf", b"\n\n", b"\r\n"]
)
def test_empty_file_fails(data: bytes) -> None:
    with pytest.raises(CrmFileError, match=r"^CRM file crm/x\.csv: the file is empty"):
        parse_crm_csv(data, source="crm/x.csv")


def test_header_only_fails() -> None:
    with pytest.raises(CrmFileError, match=r"crm/header_only\.csv: the file has a header but no data rows"):
        parse_fixture("header_only.csv")
    with pytest.raises(CrmFileError, match="no data rows"):
        parse_crm_csv(b"company_id,name\n\n\n", source="s")


def test_garbage_collector_state_is_restored() -> None:
    assert gc.isenabled()
    parse_fixture("quoting.csv")
    assert gc.isenabled()
    with pytest.raises(CrmFileError):
        parse_fixture("zero_good_rows.csv")
    assert gc.isenabled()
    gc.disable()
    try:
        parse_fixture("quoting.csv")
        assert not gc.isenabled()
    finally:
        gc.enable()


# -- properties -------------------------------------------------------------------------------------------

COLUMNS = ["company_id", "name", "country", "industry_tag"]
# NUL is the one character a warehouse cannot store: it quarantines the row (tests/test_crm_hostile.py)
storable = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
values = st.text(storable, max_size=30)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, list[list[str]], list[int]]:
    """A CRM file written by csv.writer: its bytes, the records as written and each record's line."""
    ids = draw(
        st.lists(
            st.text(storable, min_size=1, max_size=12).filter(str.strip),
            unique_by=str.strip,
            min_size=1,
            max_size=15,
        )
    )
    records = [[cid, draw(values), draw(values), draw(values)] for cid in ids]
    order = draw(st.permutations(range(len(COLUMNS))))
    lineterminator = draw(st.sampled_from(["\n", "\r\n"]))
    quoting: Literal[0, 1, 2, 3] = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    if lineterminator == "\n" and any("\r" in v for r in records for v in r):
        # Python 3.11's writer quotes only the characters of its own line terminator, so with "\n" it would
        # leave a CR unquoted, which is not RFC 4180 (see test_unquoted_carriage_return_is_malformed).
        quoting = csv.QUOTE_ALL
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=lineterminator, quoting=quoting)
    writer.writerow([COLUMNS[i] for i in order])
    lines = []
    for record in records:
        lines.append(out.getvalue().count("\n") + 1)
        writer.writerow([record[i] for i in order])
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + out.getvalue().encode("utf-8"), records, lines


@settings(max_examples=300, deadline=None)
@given(csv_files())
@example(
    (b'company_id,name,country,industry_tag\r\n" a ","\r\n","""",","\r\n', [[" a ", "\r\n", '"', ","]], [2])
)
def test_any_text_written_by_csv_writer_reads_back_trimmed(
    case: tuple[bytes, list[list[str]], list[int]],
) -> None:
    data, records, lines = case
    result = parse_crm_csv(data, source="prop.csv")
    assert result.rejected == []
    assert result.total_rows == len(records)
    assert result.rows == [
        CrmRow(line, cid.strip(), name.strip() or None, country.strip() or None, tag.strip() or None, None)
        for line, (cid, name, country, tag) in zip(lines, records, strict=True)
    ]


# A reference grammar for the accepted timestamps, written as a regular expression on purpose: the parser
# itself checks the layout by hand and must agree with this on every string.
REFERENCE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?",
    re.ASCII,
)


def reference_parse(text: str) -> datetime | None:
    m = REFERENCE.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, _z, sign, oh, om = m.groups()
    try:
        value = datetime(
            int(y),
            int(mo),
            int(d),
            int(h or 0),
            int(mi or 0),
            int(s or 0),
            int((frac or "0")[:6].ljust(6, "0")),
        )
        if sign is None:
            return value
        if int(oh) > 23 or int(om or 0) > 59:
            return None
        offset = timedelta(hours=int(oh), minutes=int(om or 0))
        return value - offset if sign == "+" else value + offset
    except (ValueError, OverflowError):
        return None


timestamp_like = st.one_of(
    st.from_regex(REFERENCE, fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9:.,]{1,14}([Zz]|[+-][0-9:]{1,6})?)?", fullmatch=True),
    st.text(alphabet="0123456789-:T Z+.,tz", max_size=32),
    st.text(max_size=32),
)


@settings(max_examples=2000, deadline=None)
@given(timestamp_like)
@example("2026-01-02T10:00:00-05")
@example("2026-01-02T10:00-0530")
def test_timestamp_parser_agrees_with_the_reference_grammar(text: str) -> None:
    assert parse_timestamp(text) == reference_parse(text)


offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets),
    st.sampled_from(["T", " "]),
    st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds"]),
    st.booleans(),
)
def test_isoformat_output_reads_back_as_utc(value: datetime, sep: str, timespec: str, compact: bool) -> None:
    text = value.isoformat(sep=sep, timespec=timespec)
    if compact:  # +hh:mm -> +hhmm
        text = text[:-3] + text[-2:]
    expected = datetime.fromisoformat(value.isoformat(timespec=timespec)).astimezone(UTC).replace(tzinfo=None)
    assert parse_timestamp(text) == expected
