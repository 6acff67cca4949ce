-- Read queries of the `runs` command (and anything else that lists runs): never write.

-- name: runs_recent
-- the newest runs first; :status null means every status
select r.run_id, r.command, r.started_at, r.finished_at, r.status, r.message,
    (select count(*) from ops.run_steps as s where s.run_id = r.run_id and s.status = 'failed') as failed_steps,
    (select min(s.step_day) from ops.run_steps as s where s.run_id = r.run_id) as first_day,
    (select max(s.step_day) from ops.run_steps as s where s.run_id = r.run_id) as last_day
from ops.runs as r
where cast(:status as varchar) is null or r.status = cast(:status as varchar)
order by r.started_at desc, r.run_id desc
limit :row_limit;

-- name: runs_count
select count(*) from ops.runs;

-- name: run_one
select run_id, command, started_at, finished_at, status, message
from ops.runs
where run_id = :run_id;

-- name: run_ids_like
-- run ids that start with a prefix (a user may type the first characters only)
select run_id from ops.runs where run_id like :pattern order by run_id limit 5;

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
