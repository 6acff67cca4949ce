-- The Spark engine's marts (warehouse/spark/marts.py), in Spark SQL: the same rows as sql/marts.sql (see
-- its header for what each column means), recomputed from the daily table for the periods a build
-- touched instead of added up from stored parts (a Parquet partition is rewritten whole anyway).
-- A period's built days are the days of the daily table in it (what activity_summary_daily counts on the
-- SQL engines: it has rows for exactly the days the daily table has).
--
-- View: analytics_company_daily_activity. Parameters (ISO strings): :lo, :hi (the first and last day of
-- the periods to recompute), :built_at.

-- name: summary
select
    activity_date,
    country,
    industry_tag,
    count(*) as companies,
    sum(case when active_users > 0 then 1 else 0 end) as active_companies,
    sum(cast(active_users as bigint)) as active_users,
    sum(cast(events as bigint)) as events,
    sum(case when is_churn_risk then 1 else 0 end) as churn_risk,
    cast(:built_at as timestamp_ntz) as built_at
from analytics_company_daily_activity
where activity_date between cast(:lo as date) and cast(:hi as date)
group by activity_date, country, industry_tag;

-- name: weekly
with daily as (
    select date_sub(d.activity_date, weekday(d.activity_date)) as period_start, d.*
    from analytics_company_daily_activity as d
    where d.activity_date between cast(:lo as date) and cast(:hi as date)
),

agg as (
    select
        period_start,
        company_id,
        max(activity_date) as last_day,
        count(*) as days_covered,
        sum(case when active_users > 0 then 1 else 0 end) as active_days,
        sum(cast(active_users as bigint)) as sum_active_users,
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
    a.period_start as week_start,
    date_add(a.period_start, 6) as week_end,
    year(date_add(a.period_start, 3)) as iso_year,
    weekofyear(a.period_start) as iso_week,
    a.company_id,
    d.company_name,
    d.country,
    d.industry_tag,
    7 as days_in_period,
    cast(a.days_covered as int) as days_covered,
    cast(a.active_days as int) as active_days,
    cast(a.sum_active_users as double) / a.days_covered as avg_active_users,
    a.peak_active_users,
    a.events,
    d.is_churn_risk,
    b.built_days < 7 as is_partial,
    cast(:built_at as timestamp_ntz) as built_at
from agg as a
inner join daily as d
    on d.company_id = a.company_id
    and d.activity_date = a.last_day
inner join built as b
    on b.period_start = a.period_start;

-- name: monthly
with daily as (
    select trunc(d.activity_date, 'MM') as period_start, last_day(d.activity_date) as period_end, d.*
    from analytics_company_daily_activity as d
    where d.activity_date between cast(:lo as date) and cast(:hi as date)
),

agg as (
    select
        period_start,
        company_id,
        max(activity_date) as last_day,
        count(*) as days_covered,
        sum(case when active_users > 0 then 1 else 0 end) as active_days,
        sum(cast(active_users as bigint)) as sum_active_users,
        max(active_users) as peak_active_users,
        sum(cast(events as bigint)) as events
    from daily
    group by period_start, company_id
),

built as (
    select period_start, max(period_end) as period_end, count(distinct activity_date) as built_days
    from daily
    group by period_start
)

select
    a.period_start as month_start,
    b.period_end as month_end,
    a.company_id,
    d.company_name,
    d.country,
    d.industry_tag,
    day(b.period_end) as days_in_period,
    cast(a.days_covered as int) as days_covered,
    cast(a.active_days as int) as active_days,
    cast(a.sum_active_users as double) / a.days_covered as avg_active_users,
    a.peak_active_users,
    a.events,
    d.is_churn_risk,
    b.built_days < day(b.period_end) as is_partial,
    cast(:built_at as timestamp_ntz) as built_at
from agg as a
inner join daily as d
    on d.company_id = a.company_id
    and d.activity_date = a.last_day
inner join built as b
    on b.period_start = a.period_start;
