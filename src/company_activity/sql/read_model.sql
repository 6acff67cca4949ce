-- The read model of the run state (company_activity.state.read_model): what `status`, `runs`, the web UI,
-- the report and the Dagster checks show. Reads only; the one place outside the writers that reads ops.*.

-- name: day_parts
-- each day of the range that any source or build recorded: its CRM snapshot, usage day and build
with days as (
    select activity_date as d from ops.usage_days
    where activity_date between cast(:start_day as date) and cast(:end_day as date)
    union
    select snapshot_date from ops.crm_snapshots
    where snapshot_date between cast(:start_day as date) and cast(:end_day as date)
    union
    select activity_date from ops.build_days
    where activity_date between cast(:start_day as date) and cast(:end_day as date)
    union
    select step_day from ops.run_steps
    where step_day between cast(:start_day as date) and cast(:end_day as date)
)

select
    days.d,
    c.status as crm_status,
    c.row_count as crm_rows,
    c.rejected_count as crm_rejected,
    u.status as usage_status,
    u.record_count as usage_records,
    u.quarantined_count as usage_quarantined,
    b.status as build_status,
    b.row_count as build_rows,
    b.churn_risk_count,
    b.built_at,
    coalesce(b.last_error, u.last_error, c.last_error) as last_error
from days
left join ops.crm_snapshots as c on c.snapshot_date = days.d
left join ops.usage_days as u on u.activity_date = days.d
left join ops.build_days as b on b.activity_date = days.d
order by days.d;

-- name: day_checks_in_range
-- the latest result of each check of each day of the range
select q.check_day, q.check_name, q.status, q.blocking, q.observed, q.threshold, q.details, q.run_id
from ops.quality_results as q
where q.check_day between cast(:start_day as date) and cast(:end_day as date)
    and q.checked_at = (
        select max(q2.checked_at) from ops.quality_results as q2
        where q2.check_day = q.check_day and q2.check_name = q.check_name
    )
order by q.check_day, q.check_name;

-- name: step_attempts
-- per day and step: the latest attempt (skipped steps are no attempt), newest first within a day, and the
-- run of the latest attempt that succeeded (succeeded or warning)
with ranked as (
    select
        s.step_day, s.step, s.run_id, s.status, s.started_at, s.finished_at, s.message,
        row_number() over (
            partition by s.step_day, s.step order by s.started_at desc, s.run_id desc
        ) as nth,
        row_number() over (
            partition by s.step_day, s.step, (s.status in ('succeeded', 'warning'))
            order by s.started_at desc, s.run_id desc
        ) as nth_of_kind
    from ops.run_steps as s
    where s.step_day between cast(:start_day as date) and cast(:end_day as date)
        and s.status <> 'skipped'
),

done as (
    select step_day, step, run_id
    from ranked
    where status in ('succeeded', 'warning') and nth_of_kind = 1
)

select
    r.step_day, r.step, r.run_id, r.status, r.started_at, r.finished_at, r.message, d.run_id as done_run_id
from ranked as r
left join done as d
    on d.step_day = r.step_day
    and d.step = r.step
where r.nth = 1
order by r.step_day, r.started_at desc;

-- name: day_crm
select status, row_count, rejected_count, duplicate_count, extra_columns, source_file, loaded_at, last_error
from ops.crm_snapshots
where snapshot_date = cast(:day as date);

-- name: day_usage
select status, record_count, quarantined_count, page_count, raw_run_id, schema_drift, completed_at, last_error
from ops.usage_days
where activity_date = cast(:day as date);

-- name: day_build
select status, row_count, churn_risk_count, missing_crm_count, crm_snapshot_date, built_at, last_error
from ops.build_days
where activity_date = cast(:day as date);

-- name: day_history
-- every step any run did for the day, newest first
select s.run_id, r.command, s.step, s.status, s.started_at, s.finished_at, s.rows_loaded, s.rows_rejected,
    s.message
from ops.run_steps as s
inner join ops.runs as r
    on r.run_id = s.run_id
where s.step_day = cast(:day as date)
order by s.started_at desc, s.step desc
limit :row_limit;

-- name: data_range
-- the first and the last built day
select min(activity_date) as first_day, max(activity_date) as last_day
from ops.build_days
where status = 'built';

-- name: latest_step_day
-- the newest day any step touched (to point at it when a window is empty)
select max(step_day) from ops.run_steps;

-- name: latest_run
select run_id, command, status, started_at, finished_at, message
from ops.runs
order by started_at desc, run_id desc
limit 1;

-- name: runs_recent
-- the newest runs first; :status null means every status. days: the days the run worked on; days_built:
-- those it built (its build step succeeded, with or without a warning)
select r.run_id, r.command, r.status, r.started_at, r.finished_at, r.message,
    (select count(*) from ops.run_steps as s where s.run_id = r.run_id and s.status = 'failed') as failed_steps,
    (select min(s.step_day) from ops.run_steps as s where s.run_id = r.run_id) as first_day,
    (select max(s.step_day) from ops.run_steps as s where s.run_id = r.run_id) as last_day,
    (select count(distinct s.step_day) from ops.run_steps as s where s.run_id = r.run_id) as days,
    (
        select count(distinct s.step_day) from ops.run_steps as s
        where s.run_id = r.run_id and s.step = 'build' and s.status in ('succeeded', 'warning')
    ) as days_built
from ops.runs as r
where cast(:status as varchar) is null or r.status = cast(:status as varchar)
order by r.started_at desc, r.run_id desc
limit :row_limit;

-- name: runs_count
select count(*) from ops.runs;

-- name: run_one
select r.run_id, r.command, r.status, r.started_at, r.finished_at, r.message
from ops.runs as r
where r.run_id = :run_id;

-- name: run_ids_like
-- run ids that start with a prefix (a user may type the first characters only)
select run_id from ops.runs where run_id like :pattern escape '\' order by run_id limit 5;

-- name: run_steps_of
select step, step_day, status, started_at, finished_at, rows_loaded, rows_rejected, message
from ops.run_steps
where run_id = :run_id
order by step_day, started_at, step;

-- name: run_checks_of
select check_day, check_name, status, blocking, observed, threshold, details
from ops.quality_results
where run_id = :run_id
order by check_day, check_name;

-- name: run_changes_of
select activity_date, rows_inserted, rows_updated, rows_unchanged, rows_deleted
from ops.build_changes
where run_id = :run_id
order by activity_date;

-- name: run_alerts_of
select seq, severity, title, alert_day, step, message, rerun
from ops.run_alerts
where run_id = :run_id
order by seq;

-- name: usage_quarantine_of_day
-- the usage records of a day set aside (a limit of the project's own), in page and record order
select raw_run_id, page, record_index, reason, excerpt
from ops.usage_quarantine
where activity_date = cast(:day as date)
order by raw_run_id, page, record_index
limit :row_limit;
