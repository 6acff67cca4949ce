-- The run ledger and per-day status (ops.*).

-- name: set_schema_version
insert into ops.schema_version (version, applied_at) values (:version, cast(:applied_at as timestamp));

-- name: run_start
insert into ops.runs (run_id, command, started_at, status)
values (:run_id, :command, cast(:started_at as timestamp), 'running');

-- name: run_finish
update ops.runs
set finished_at = cast(:finished_at as timestamp), status = :status, message = :message
where run_id = :run_id;

-- name: step_upsert
insert into ops.run_steps (
    run_id, step, step_day, status, started_at, finished_at, rows_loaded, rows_rejected, message
)
values (
    :run_id, :step, cast(:day as date), :status, cast(:started_at as timestamp),
    cast(:finished_at as timestamp), :rows_loaded, :rows_rejected, :message
)
on conflict (run_id, step, step_day) do update set
    status = excluded.status,
    finished_at = excluded.finished_at,
    rows_loaded = excluded.rows_loaded,
    rows_rejected = excluded.rows_rejected,
    message = excluded.message;

-- name: usage_day_upsert
insert into ops.usage_days (
    activity_date, status, raw_run_id, record_count, page_count, schema_drift,
    completed_at, updated_at, last_error
)
values (
    cast(:day as date), :status, :raw_run_id, :record_count, :page_count, :schema_drift,
    cast(:completed_at as timestamp), cast(:updated_at as timestamp), :last_error
)
on conflict (activity_date) do update set
    status = excluded.status,
    raw_run_id = excluded.raw_run_id,
    record_count = excluded.record_count,
    page_count = excluded.page_count,
    schema_drift = excluded.schema_drift,
    completed_at = excluded.completed_at,
    updated_at = excluded.updated_at,
    last_error = excluded.last_error;

-- name: usage_day_mark
-- a non-complete status (pending, lost, failed); never downgrades a complete day
insert into ops.usage_days (activity_date, status, updated_at, last_error)
values (cast(:day as date), :status, cast(:updated_at as timestamp), :last_error)
on conflict (activity_date) do update set
    status = case when ops.usage_days.status = 'complete' then ops.usage_days.status
        else excluded.status end,
    updated_at = excluded.updated_at,
    last_error = excluded.last_error;

-- name: usage_days_between
select activity_date, status, record_count, raw_run_id, last_error
from ops.usage_days
where activity_date between cast(:start_day as date) and cast(:end_day as date)
order by activity_date;

-- name: complete_usage_days
select activity_date
from ops.usage_days
where status = 'complete'
    and activity_date between cast(:start_day as date) and cast(:end_day as date)
order by activity_date;

-- name: first_usage_day
select min(activity_date) from ops.usage_days where status = 'complete';

-- name: first_run_day
-- the first day a nightly run (`run` without --date, as the scheduler runs it) took care of: one-off runs
-- (`run --date`, `backfill`, `rerun`, `replay`, `build`) never move the start date
select min(s.step_day)
from ops.run_steps as s
inner join ops.runs as r
    on r.run_id = s.run_id
where r.command = 'run';

-- name: crm_snapshot_upsert
insert into ops.crm_snapshots (
    snapshot_date, status, row_count, rejected_count, duplicate_count, extra_columns,
    source_file, loaded_at, updated_at, last_error
)
values (
    cast(:day as date), :status, :row_count, :rejected_count, :duplicate_count, :extra_columns,
    :source_file, cast(:loaded_at as timestamp), cast(:updated_at as timestamp), :last_error
)
on conflict (snapshot_date) do update set
    status = case when ops.crm_snapshots.status = 'loaded' and excluded.status <> 'loaded'
        then ops.crm_snapshots.status else excluded.status end,
    row_count = coalesce(excluded.row_count, ops.crm_snapshots.row_count),
    rejected_count = coalesce(excluded.rejected_count, ops.crm_snapshots.rejected_count),
    duplicate_count = coalesce(excluded.duplicate_count, ops.crm_snapshots.duplicate_count),
    extra_columns = coalesce(excluded.extra_columns, ops.crm_snapshots.extra_columns),
    source_file = coalesce(excluded.source_file, ops.crm_snapshots.source_file),
    loaded_at = coalesce(excluded.loaded_at, ops.crm_snapshots.loaded_at),
    updated_at = excluded.updated_at,
    last_error = excluded.last_error;

-- name: build_day_upsert
insert into ops.build_days (
    activity_date, status, row_count, churn_risk_count, missing_crm_count, crm_snapshot_date,
    built_at, last_error
)
values (
    cast(:day as date), :status, :row_count, :churn_risk_count, :missing_crm_count,
    cast(:crm_snapshot_date as date), cast(:built_at as timestamp), :last_error
)
on conflict (activity_date) do update set
    status = excluded.status,
    row_count = coalesce(excluded.row_count, ops.build_days.row_count),
    churn_risk_count = coalesce(excluded.churn_risk_count, ops.build_days.churn_risk_count),
    missing_crm_count = coalesce(excluded.missing_crm_count, ops.build_days.missing_crm_count),
    crm_snapshot_date = coalesce(excluded.crm_snapshot_date, ops.build_days.crm_snapshot_date),
    built_at = excluded.built_at,
    last_error = excluded.last_error;

-- name: built_days_between
-- the built days of a range and when each was built (`build` skips those whose inputs did not change)
select activity_date, built_at
from ops.build_days
where status = 'built'
    and activity_date between cast(:start_day as date) and cast(:end_day as date)
order by activity_date;

-- name: quality_result_upsert
insert into ops.quality_results (
    run_id, check_day, check_name, status, blocking, observed, threshold, details, checked_at
)
values (
    :run_id, cast(:day as date), :check_name, :status, :blocking, :observed, :threshold, :details,
    cast(:checked_at as timestamp)
)
on conflict (run_id, check_day, check_name) do update set
    status = excluded.status,
    observed = excluded.observed,
    threshold = excluded.threshold,
    details = excluded.details,
    checked_at = excluded.checked_at;

-- name: status_days
-- one row per day that any step touched, newest first
with days as (
    select activity_date as d from ops.usage_days
    union select snapshot_date from ops.crm_snapshots
    union select activity_date from ops.build_days
)
select
    days.d,
    c.status as crm_status,
    c.row_count as crm_rows,
    c.rejected_count as crm_rejected,
    u.status as usage_status,
    u.record_count as usage_records,
    b.status as build_status,
    b.row_count as build_rows,
    b.churn_risk_count,
    coalesce(b.last_error, u.last_error, c.last_error) as last_error
from days
left join ops.crm_snapshots as c on c.snapshot_date = days.d
left join ops.usage_days as u on u.activity_date = days.d
left join ops.build_days as b on b.activity_date = days.d
where days.d between cast(:start_day as date) and cast(:end_day as date)
order by days.d desc;

-- name: quality_for_days
select check_day, check_name, status, observed, threshold, details
from ops.quality_results as q
where check_day between cast(:start_day as date) and cast(:end_day as date)
    and q.checked_at = (
        select max(checked_at) from ops.quality_results as q2
        where q2.check_day = q.check_day and q2.check_name = q.check_name
    )
order by check_day, check_name;

-- name: latest_step_outcomes
-- each step's status for a day in the latest run that touched it
select s.step, s.status
from ops.run_steps as s
where s.step_day = cast(:day as date)
    and s.started_at = (
        select max(s2.started_at) from ops.run_steps as s2
        where s2.step_day = s.step_day and s2.step = s.step
    );

-- name: interrupt_running
-- runs and steps left "running" by a process that died (killed, power loss): every writer holds the
-- warehouse lock, so whoever holds it now knows no other run is alive
update ops.runs
set status = 'failed', finished_at = cast(:now as timestamp),
    message = 'interrupted: the process ended without finishing'
where status = 'running' and run_id <> :run_id;

update ops.run_steps
set status = 'failed', finished_at = cast(:now as timestamp),
    message = 'interrupted: the process ended without finishing'
where status = 'running' and run_id <> :run_id;

-- name: stale_built_days
-- days to (re)build whatever run staged their inputs: (a) days whose last build failed (a crash, a failed
-- check, a hold: the next run tries again; a hold's volume check is re-applied first, see run/runner.py),
-- or whose build (built or failed) is older than their inputs: usage of a day of their 7-day window, or a
-- CRM snapshot on or before them; (b) days whose usage is complete but that were never built (e.g. a
-- backfill stopped after staging). A run that died between a load and the build leaves such days; the next
-- run builds them (derived from timestamps, so no bookkeeping can be lost in a crash). The build gate still
-- decides what can be built.
select b.activity_date
from ops.build_days as b
where b.status = 'failed'
    or exists (
        select 1 from ops.usage_days as u
        where u.status = 'complete'
            and u.activity_date between b.activity_date - 6 and b.activity_date
            and u.completed_at > b.built_at
    )
    or exists (
        select 1 from ops.crm_snapshots as c
        where c.status = 'loaded'
            and c.snapshot_date <= b.activity_date
            and c.loaded_at > b.built_at
    )
union
select u.activity_date
from ops.usage_days as u
where u.status = 'complete'
    and not exists (select 1 from ops.build_days as b where b.activity_date = u.activity_date)
order by 1;

-- name: failed_build_days
-- days whose last build failed
select activity_date
from ops.build_days
where status = 'failed'
order by activity_date;

-- name: run_steps_interrupt
-- the steps a stopped run (SIGINT/SIGTERM, its deadline) left running: interrupted, not failed
update ops.run_steps
set status = 'interrupted', finished_at = cast(:now as timestamp), message = :message
where run_id = :run_id and status = 'running';

-- name: usage_day_status
select status from ops.usage_days where activity_date = cast(:day as date);

-- name: schema_drift_elsewhere
-- the days other than :day that recorded schema drift, and the fields (comma-separated)
select activity_date, schema_drift
from ops.usage_days
where schema_drift is not null and activity_date <> cast(:day as date);

-- name: build_changes_upsert
insert into ops.build_changes (
    run_id, activity_date, rows_inserted, rows_updated, rows_unchanged, rows_deleted
)
values (:run_id, cast(:day as date), :inserted, :updated, :unchanged, :deleted)
on conflict (run_id, activity_date) do update set
    rows_inserted = excluded.rows_inserted,
    rows_updated = excluded.rows_updated,
    rows_unchanged = excluded.rows_unchanged,
    rows_deleted = excluded.rows_deleted;

-- name: run_alert_insert
insert into ops.run_alerts (run_id, seq, severity, title, alert_day, step, message, rerun)
values (:run_id, :seq, :severity, :title, cast(:day as date), :step, :message, :rerun)
on conflict (run_id, seq) do nothing;

-- name: usage_day_quarantined
-- issue 24: how many records of the day's published raw run were quarantined (run after usage_day_upsert)
update ops.usage_days
set quarantined_count = :quarantined_count
where activity_date = cast(:day as date);

-- name: usage_quarantine_clear
-- the quarantined records of a day are replaced whole each time the day is published
delete from ops.usage_quarantine
where activity_date = cast(:day as date);

-- name: usage_quarantine_of_day
-- the quarantined records of a published usage day, in raw-run order
select page, record_index, reason, excerpt, raw_run_id
from ops.usage_quarantine
where activity_date = cast(:day as date)
order by page, record_index;
