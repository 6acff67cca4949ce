-- The warehouse schema: raw -> stg -> analytics, with ops.* recording every run and day.
-- One dialect: DuckDB and PostgreSQL both run this file as it is. Idempotent.
--
-- The keys of the three large tables (stg.crm_daily, stg.product_usage_daily,
-- analytics.company_daily_activity) are unique indexes in keys.sql, created where an index pays for
-- itself (PostgreSQL). DuckDB keeps them by construction instead: its ART indexes must fit in memory and
-- slow every bulk load, while the loads here already guarantee the key (CRM duplicates are quarantined,
-- usage conflicts fail the day and identical repeats collapse) and the build's blocking grain_unique
-- check verifies it before publishing.

create schema if not exists stg;
create schema if not exists analytics;
create schema if not exists ops;

-- the CRM daily snapshot, one row per company per snapshot day
create table if not exists stg.crm_daily (
    snapshot_date    date        not null,
    company_id       varchar     not null,
    company_name     varchar,
    country          varchar,
    industry_tag     varchar,
    last_contact_at  timestamp,
    source_file      varchar     not null,
    source_line      integer     not null,
    loaded_at        timestamp   not null,
    run_id           varchar     not null
);

-- the product-usage API's daily aggregates, loaded from a complete raw run
-- (active_users and events become BIGINT in schema version 2: migrate_wide_counts.sql)
create table if not exists stg.product_usage_daily (
    activity_date    date        not null,
    company_id       varchar     not null,
    active_users     integer     not null,
    events           integer     not null,
    raw_run_id       varchar     not null,
    loaded_at        timestamp   not null
);

-- one row per company per UTC day: see shared/specs/company-daily-activity.md
-- (the three counts become BIGINT in schema version 2: migrate_wide_counts.sql)
create table if not exists analytics.company_daily_activity (
    activity_date      date        not null,
    company_id         varchar     not null,
    company_name       varchar,
    country            varchar,
    industry_tag       varchar,
    last_contact_at    timestamp,
    active_users       integer     not null,
    events             integer     not null,
    "7d_active_users"  integer     not null,
    is_churn_risk      boolean     not null,
    record_loaded_at   timestamp   not null
);

create table if not exists ops.schema_version (
    version          integer     not null,
    applied_at       timestamp   not null
);

-- one row per invocation of the pipeline
create table if not exists ops.runs (
    run_id           varchar     primary key,
    command          varchar     not null,
    started_at       timestamp   not null,
    finished_at      timestamp,
    status           varchar     not null,   -- running | succeeded | failed
    message          varchar
);

-- one row per step of a run and day
create table if not exists ops.run_steps (
    run_id           varchar     not null,
    step             varchar     not null,   -- ingest_crm | ingest_usage | build
    step_day         date        not null,
    status           varchar     not null,   -- running | succeeded | warning | failed | skipped | pending
    started_at       timestamp   not null,
    finished_at      timestamp,
    rows_loaded      integer,
    rows_rejected    integer,
    message          varchar,
    primary key (run_id, step, step_day)
);

-- per usage day: whether its API ingestion is complete (the build gate reads this)
create table if not exists ops.usage_days (
    activity_date    date        primary key,
    status           varchar     not null,   -- complete | pending | lost | failed
    raw_run_id       varchar,
    record_count     integer,
    page_count       integer,
    schema_drift     varchar,                -- comma-separated extra fields seen
    completed_at     timestamp,
    updated_at       timestamp   not null,
    last_error       varchar
);

-- per CRM snapshot day
create table if not exists ops.crm_snapshots (
    snapshot_date    date        primary key,
    status           varchar     not null,   -- loaded | failed | missing
    row_count        integer,
    rejected_count   integer,
    duplicate_count  integer,
    extra_columns    varchar,
    source_file      varchar,
    loaded_at        timestamp,
    updated_at       timestamp   not null,
    last_error       varchar
);

-- per analytics day: the last build
create table if not exists ops.build_days (
    activity_date     date        primary key,
    status            varchar     not null,   -- built | failed
    row_count         integer,
    churn_risk_count  integer,
    missing_crm_count integer,
    crm_snapshot_date date,
    built_at          timestamp   not null,
    last_error        varchar
);

-- data-quality results per run and day
create table if not exists ops.quality_results (
    run_id           varchar     not null,
    check_day        date        not null,
    check_name       varchar     not null,
    status           varchar     not null,   -- pass | warn | fail
    blocking         boolean     not null,
    observed         double precision,
    threshold        double precision,
    details          varchar,
    checked_at       timestamp   not null,
    primary key (run_id, check_day, check_name)
);
