-- The web UI's reads (company_activity.web). One dialect: DuckDB and PostgreSQL both run these as they are.
-- Filters given as NULL match everything.

-- name: data_range
select min(activity_date) as first_day, max(activity_date) as last_day
from ops.build_days
where status = 'built';

-- name: filter_values
select distinct country, industry_tag
from analytics.activity_summary_daily
where activity_date >= cast(:since as date)
order by country, industry_tag;

-- name: overview_days
select
    activity_date,
    sum(companies) as companies,
    sum(active_companies) as active_companies,
    sum(active_users) as active_users,
    sum(events) as events,
    sum(churn_risk) as churn_risk
from analytics.activity_summary_daily
where activity_date between cast(:start_day as date) and cast(:end_day as date)
    and (cast(:country as varchar) is null or country = cast(:country as varchar))
    and (cast(:industry as varchar) is null or industry_tag = cast(:industry as varchar))
group by activity_date
order by activity_date;

-- name: day_statuses
-- every day any step touched, with its usage and build status
with days as (
    select activity_date as d from ops.usage_days
    where activity_date between cast(:start_day as date) and cast(:end_day as date)
    union
    select snapshot_date from ops.crm_snapshots
    where snapshot_date between cast(:start_day as date) and cast(:end_day as date)
    union
    select activity_date from ops.build_days
    where activity_date between cast(:start_day as date) and cast(:end_day as date)
)
select
    days.d as day,
    c.status as crm_status,
    u.status as usage_status,
    b.status as build_status,
    b.row_count as build_rows,
    b.churn_risk_count,
    coalesce(b.last_error, u.last_error, c.last_error) as last_error
from days
left join ops.crm_snapshots as c on c.snapshot_date = days.d
left join ops.usage_days as u on u.activity_date = days.d
left join ops.build_days as b on b.activity_date = days.d
order by days.d;

-- name: churn_list
-- the churn-risk companies as of :day, in one pass over the last 30 days: attributes on :day, the last day
-- with usage (NULL: none in those 30 days) and the daily active users of the 14 days ending on :day (t13 …
-- t0; NULL where the company had no row)
select
    company_id,
    max(case when activity_date = cast(:day as date) then company_name end) as company_name,
    max(case when activity_date = cast(:day as date) then country end) as country,
    max(case when activity_date = cast(:day as date) then industry_tag end) as industry_tag,
    max(case when activity_date = cast(:day as date) then last_contact_at end) as last_contact_at,
    max(case when active_users > 0 or events > 0 then activity_date end) as last_usage,
    sum(case when activity_date = cast(:day as date) - 13 then active_users end) as t13,
    sum(case when activity_date = cast(:day as date) - 12 then active_users end) as t12,
    sum(case when activity_date = cast(:day as date) - 11 then active_users end) as t11,
    sum(case when activity_date = cast(:day as date) - 10 then active_users end) as t10,
    sum(case when activity_date = cast(:day as date) - 9 then active_users end) as t9,
    sum(case when activity_date = cast(:day as date) - 8 then active_users end) as t8,
    sum(case when activity_date = cast(:day as date) - 7 then active_users end) as t7,
    sum(case when activity_date = cast(:day as date) - 6 then active_users end) as t6,
    sum(case when activity_date = cast(:day as date) - 5 then active_users end) as t5,
    sum(case when activity_date = cast(:day as date) - 4 then active_users end) as t4,
    sum(case when activity_date = cast(:day as date) - 3 then active_users end) as t3,
    sum(case when activity_date = cast(:day as date) - 2 then active_users end) as t2,
    sum(case when activity_date = cast(:day as date) - 1 then active_users end) as t1,
    sum(case when activity_date = cast(:day as date) - 0 then active_users end) as t0
from analytics.company_daily_activity
where activity_date between cast(:day as date) - 29 and cast(:day as date)
    and company_id in (
        select c.company_id from analytics.company_daily_activity as c
        where c.activity_date = cast(:day as date) and c.is_churn_risk
    )
group by company_id;

-- name: company_days
select
    activity_date, company_name, country, industry_tag, last_contact_at, active_users, events,
    "7d_active_users" as active_users_7d, is_churn_risk
from analytics.company_daily_activity
where company_id = :company_id
    and activity_date between cast(:start_day as date) and cast(:end_day as date)
order by activity_date;

-- name: company_weeks
select
    week_start, week_end, iso_year, iso_week, days_covered, active_days, avg_active_users,
    peak_active_users, events, is_churn_risk, is_partial
from analytics.company_weekly_activity
where company_id = :company_id
    and week_start between cast(:start_day as date) - 6 and cast(:end_day as date)
order by week_start;

-- name: company_months
select
    month_start, month_end, days_in_period, days_covered, active_days, avg_active_users,
    peak_active_users, events, is_churn_risk, is_partial
from analytics.company_monthly_activity
where company_id = :company_id
order by month_start;

-- name: runs
with latest as (
    select run_id, command, started_at, finished_at, status, message
    from ops.runs
    order by started_at desc
    limit :limit
),

steps as (
    select
        s.run_id,
        count(*) as steps,
        sum(case when s.status = 'failed' then 1 else 0 end) as failed,
        min(s.step_day) as first_day,
        max(s.step_day) as last_day
    from ops.run_steps as s
    where s.run_id in (select run_id from latest)
    group by s.run_id
)

select
    l.run_id, l.command, l.started_at, l.finished_at, l.status, l.message,
    coalesce(st.steps, 0) as steps, coalesce(st.failed, 0) as failed, st.first_day, st.last_day
from latest as l
left join steps as st
    on st.run_id = l.run_id
order by l.started_at desc;

-- name: run
select run_id, command, started_at, finished_at, status, message
from ops.runs
where run_id = :run_id;

-- name: run_steps
select step, step_day, status, started_at, finished_at, rows_loaded, rows_rejected, message
from ops.run_steps
where run_id = :run_id
order by started_at, step_day, step;

-- name: run_checks
select check_day, check_name, status, blocking, observed, threshold, details
from ops.quality_results
where run_id = :run_id
order by check_day, check_name;

-- name: day_crm
select status, row_count, rejected_count, duplicate_count, extra_columns, source_file, loaded_at,
    updated_at, last_error
from ops.crm_snapshots
where snapshot_date = cast(:day as date);

-- name: day_usage
select status, raw_run_id, record_count, page_count, schema_drift, completed_at, updated_at, last_error
from ops.usage_days
where activity_date = cast(:day as date);

-- name: day_build
select status, row_count, churn_risk_count, missing_crm_count, crm_snapshot_date, built_at, last_error
from ops.build_days
where activity_date = cast(:day as date);

-- name: day_steps
select run_id, step, status, started_at, finished_at, rows_loaded, rows_rejected, message
from ops.run_steps
where step_day = cast(:day as date)
order by started_at desc, step;

-- name: day_checks
select run_id, check_name, status, blocking, observed, threshold, details, checked_at
from ops.quality_results
where check_day = cast(:day as date)
order by checked_at desc, check_name;
