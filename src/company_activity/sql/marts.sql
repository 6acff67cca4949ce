-- The weekly and monthly marts for BI tools, rebuilt from analytics.company_daily_activity for the periods
-- a build touched. One dialect: DuckDB and PostgreSQL both run these as they are.
--
-- A row per company and period (ISO week starting Monday / calendar month) in which the company has at
-- least one row in the daily table:
--   days_in_period     7, or the month's length
--   days_covered       days of the period with a row for the company
--   active_days        days with active_users > 0
--   avg_active_users   average daily active users over the days covered
--   peak_active_users  the largest daily active users
--   events             events summed over the days covered
--   is_churn_risk      the churn-risk flag on the company's last covered day of the period
--   is_partial         the warehouse has fewer built days in the period than days_in_period (the period is
--                      still going on, or some of its days are pending or failed)
--
-- Parameters: :start_day, :end_day (the days a build published; every period overlapping them is rebuilt)
-- and :built_at.

-- name: refresh_weekly
delete from analytics.company_weekly_activity
where week_start between cast(date_trunc('week', cast(:start_day as timestamp)) as date)
    and cast(date_trunc('week', cast(:end_day as timestamp)) as date);

insert into analytics.company_weekly_activity (
    week_start, week_end, iso_year, iso_week, company_id, company_name, country, industry_tag,
    days_in_period, days_covered, active_days, avg_active_users, peak_active_users, events,
    is_churn_risk, is_partial, built_at
)
with daily as (
    select
        cast(date_trunc('week', cast(d.activity_date as timestamp)) as date) as period_start,
        d.*
    from analytics.company_daily_activity as d
    where d.activity_date between cast(date_trunc('week', cast(:start_day as timestamp)) as date)
        and cast(date_trunc('week', cast(:end_day as timestamp)) as date) + 6
),

-- one pass of aggregates; the attributes and the churn flag of the last covered day are joined after
agg as (
    select
        period_start,
        company_id,
        max(activity_date) as last_day,
        count(*) as days_covered,
        sum(case when active_users > 0 then 1 else 0 end) as active_days,
        avg(cast(active_users as double precision)) as avg_active_users,
        max(active_users) as peak_active_users,
        sum(cast(events as bigint)) as events
    from daily
    group by period_start, company_id
),

built as (
    select period_start, count(distinct activity_date) as built_days
    from daily
    group by period_start
)

select
    a.period_start,
    a.period_start + 6,
    cast(extract(isoyear from a.period_start) as integer),
    cast(extract(week from a.period_start) as integer),
    a.company_id,
    d.company_name,
    d.country,
    d.industry_tag,
    7,
    a.days_covered,
    a.active_days,
    a.avg_active_users,
    a.peak_active_users,
    a.events,
    d.is_churn_risk,
    b.built_days < 7,
    cast(:built_at as timestamp)
from agg as a
inner join daily as d
    on d.company_id = a.company_id
    and d.activity_date = a.last_day
inner join built as b
    on b.period_start = a.period_start;

-- name: refresh_monthly
delete from analytics.company_monthly_activity
where month_start between cast(date_trunc('month', cast(:start_day as timestamp)) as date)
    and cast(date_trunc('month', cast(:end_day as timestamp)) as date);

insert into analytics.company_monthly_activity (
    month_start, month_end, company_id, company_name, country, industry_tag,
    days_in_period, days_covered, active_days, avg_active_users, peak_active_users, events,
    is_churn_risk, is_partial, built_at
)
with daily as (
    select
        cast(date_trunc('month', cast(d.activity_date as timestamp)) as date) as period_start,
        d.*
    from analytics.company_daily_activity as d
    where d.activity_date >= cast(date_trunc('month', cast(:start_day as timestamp)) as date)
        and d.activity_date < cast(date_trunc('month', cast(:end_day as timestamp)) + interval '1 month' as date)
),

agg as (
    select
        period_start,
        company_id,
        max(activity_date) as last_day,
        count(*) as days_covered,
        sum(case when active_users > 0 then 1 else 0 end) as active_days,
        avg(cast(active_users as double precision)) as avg_active_users,
        max(active_users) as peak_active_users,
        sum(cast(events as bigint)) as events
    from daily
    group by period_start, company_id
),

built as (
    select
        period_start,
        cast(period_start + interval '1 month' as date) - 1 as period_end,
        count(distinct activity_date) as built_days
    from daily
    group by period_start
)

select
    a.period_start,
    b.period_end,
    a.company_id,
    d.company_name,
    d.country,
    d.industry_tag,
    b.period_end - a.period_start + 1,
    a.days_covered,
    a.active_days,
    a.avg_active_users,
    a.peak_active_users,
    a.events,
    d.is_churn_risk,
    b.built_days < b.period_end - a.period_start + 1,
    cast(:built_at as timestamp)
from agg as a
inner join daily as d
    on d.company_id = a.company_id
    and d.activity_date = a.last_day
inner join built as b
    on b.period_start = a.period_start;

-- name: refresh_summary
-- analytics.activity_summary_daily for the days :start_day … :end_day
delete from analytics.activity_summary_daily
where activity_date between cast(:start_day as date) and cast(:end_day as date);

insert into analytics.activity_summary_daily (
    activity_date, country, industry_tag, companies, active_companies, active_users, events, churn_risk,
    built_at
)
select
    activity_date,
    country,
    industry_tag,
    count(*),
    sum(case when active_users > 0 then 1 else 0 end),
    sum(cast(active_users as bigint)),
    sum(cast(events as bigint)),
    sum(case when is_churn_risk then 1 else 0 end),
    cast(:built_at as timestamp)
from analytics.company_daily_activity
where activity_date between cast(:start_day as date) and cast(:end_day as date)
group by activity_date, country, industry_tag;
