-- Schema version 5 (see warehouse/migrations.py): usage records quarantined for the project's own limits
-- (issue 24, docs/usage-api-policy.md). One dialect: DuckDB and PostgreSQL both run this file.

-- per usage day: how many records of the published raw run were kept out for the project's own limits
-- (0: none; NULL: the day was last published before this version, or never)
alter table ops.usage_days add column if not exists quarantined_count integer;

-- the records kept out of each published usage day: where they are in its raw run and why
create table if not exists ops.usage_quarantine (
    activity_date    date        not null,
    raw_run_id       varchar     not null,   -- = ops.usage_days.raw_run_id of the day
    page             integer     not null,   -- 1-based page of the raw run (3 for page-00003.json)
    record_index     integer     not null,   -- 0-based index of the record within its page
    reason           varchar     not null,   -- why, as the step message and the lake's quarantine file say it
    excerpt          varchar,                -- the record's company_id, short, escaped and redacted
    primary key (activity_date, page, record_index)
);
