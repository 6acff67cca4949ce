-- Monitoring: the figures volume-anomaly detection and recovery notices read from ops.*.
-- One dialect: DuckDB and PostgreSQL both run these as they are.

-- name: volume_counts
-- each source's daily count on the days asked for (the day, the previous day, a week earlier):
-- crm = rows of a loaded snapshot, usage = records of a complete day
select 'crm' as source, snapshot_date as count_day, row_count as record_count
from ops.crm_snapshots
where status = 'loaded'
    and row_count is not null
    and snapshot_date in (cast(:day as date), cast(:previous_day as date), cast(:week_ago as date))
union all
select 'usage' as source, activity_date as count_day, record_count
from ops.usage_days
where status = 'complete'
    and record_count is not null
    and activity_date in (cast(:day as date), cast(:previous_day as date), cast(:week_ago as date))
order by source, count_day;

-- name: volume_series
-- each source's daily counts over a range (for reports and charts)
select 'crm' as source, snapshot_date as count_day, row_count as record_count
from ops.crm_snapshots
where status = 'loaded'
    and row_count is not null
    and snapshot_date between cast(:start_day as date) and cast(:end_day as date)
union all
select 'usage' as source, activity_date as count_day, record_count
from ops.usage_days
where status = 'complete'
    and record_count is not null
    and activity_date between cast(:start_day as date) and cast(:end_day as date)
order by source, count_day;

-- name: previous_step_outcome
-- the last finished outcome of a (step, day) in an earlier run: decides whether a success is a recovery
select run_id, status, message, finished_at
from ops.run_steps
where step = :step
    and step_day = cast(:day as date)
    and run_id <> :run_id
    and status in ('succeeded', 'warning', 'failed')
order by started_at desc, finished_at desc
limit 1;
