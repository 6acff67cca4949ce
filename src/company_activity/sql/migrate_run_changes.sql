-- Schema version (see warehouse/migrations.py): what each build changed, and the alerts each run sent.

-- per run and built day: rows of analytics.company_daily_activity the build inserted, updated (values
-- changed: record_loaded_at moved), left unchanged, and deleted (a company no longer in the day's rows)
create table if not exists ops.build_changes (
    run_id           varchar     not null,
    activity_date    date        not null,
    rows_inserted    bigint      not null,
    rows_updated     bigint      not null,
    rows_unchanged   bigint      not null,
    rows_deleted     bigint      not null,
    primary key (run_id, activity_date)
);

-- every alert a run raised (each distinct alert once, redacted), in the order it was raised
create table if not exists ops.run_alerts (
    run_id           varchar     not null,
    seq              integer     not null,
    severity         varchar     not null,   -- error | warning | info
    title            varchar     not null,
    alert_day        date,
    step             varchar,
    message          varchar     not null,
    rerun            varchar,
    primary key (run_id, seq)
);
