-- Read queries of `status` (the per-day view of run state): never write.

-- name: day_steps_of_latest_runs
-- for each day of the window, every step of the latest run that had a step on that day
with latest as (
    select step_day, max(started_at) as started_at
    from ops.run_steps
    where step_day between cast(:start_day as date) and cast(:end_day as date)
    group by step_day
),

latest_run as (
    select s.step_day, max(s.run_id) as run_id
    from ops.run_steps as s
    inner join latest as l
        on l.step_day = s.step_day
        and l.started_at = s.started_at
    group by s.step_day
)

select s.step_day, s.run_id, s.step, s.status, s.started_at, s.finished_at, s.message
from ops.run_steps as s
inner join latest_run as r
    on r.step_day = s.step_day
    and r.run_id = s.run_id
order by s.step_day, s.started_at;

-- name: day_crm
select status, row_count, rejected_count, duplicate_count, extra_columns, source_file, loaded_at, last_error
from ops.crm_snapshots
where snapshot_date = cast(:day as date);

-- name: day_usage
select status, record_count, page_count, raw_run_id, schema_drift, completed_at, last_error
from ops.usage_days
where activity_date = cast(:day as date);

-- name: day_build
select status, row_count, churn_risk_count, missing_crm_count, crm_snapshot_date, built_at, last_error
from ops.build_days
where activity_date = cast(:day as date);

-- name: day_checks
-- the latest result of each check of the day
select q.check_name, q.status, q.blocking, q.observed, q.threshold, q.details, q.run_id
from ops.quality_results as q
where q.check_day = cast(:day as date)
    and q.checked_at = (
        select max(q2.checked_at) from ops.quality_results as q2
        where q2.check_day = q.check_day and q2.check_name = q.check_name
    )
order by q.check_name;

-- name: day_history
-- every step any run did for the day, newest first
select s.run_id, r.command, s.step, s.status, s.started_at, s.finished_at, s.rows_loaded, s.message
from ops.run_steps as s
inner join ops.runs as r
    on r.run_id = s.run_id
where s.step_day = cast(:day as date)
order by s.started_at desc, s.step desc
limit :row_limit;

-- name: latest_run_day
-- the newest day any step touched (to point at it when the window is empty)
select max(step_day) from ops.run_steps;
