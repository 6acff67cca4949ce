-- The weekly and monthly marts for BI tools, rebuilt from analytics.company_daily_activity for the periods
-- of the days whose rows a build changed (company_activity.marts.stale_days), in the build's transaction.
-- One dialect: DuckDB and PostgreSQL both run these as they are.
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
-- How: the daily rows of the touched parts (analytics.company_activity_parts: a week's days within one
-- month, at most 7 days) are aggregated once (`refresh_parts`); the touched weeks and months are then
-- added up from their parts (`refresh_weekly`, `refresh_monthly`), so a nightly build never re-reads a
-- whole month of daily rows. Built days per period come from analytics.activity_summary_daily, refreshed
-- first (`refresh_summary`).
--
-- Parameters: :start_day, :end_day (the first and last day whose rows changed), :built_at, and the bounds
-- of what they touch (company_activity.marts computes them): :part_lo … :part_hi (the first day of the
-- first part, the last day of the last), :week_lo … :week_hi (Monday … Sunday), :month_lo … :month_hi.

-- name: summarised_days
-- the days of :start_day … :end_day the daily summary (hence the marts) has figures for
select distinct activity_date
from analytics.activity_summary_daily
where activity_date between cast(:start_day as date) and cast(:end_day as date);

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

-- name: refresh_parts
delete from analytics.company_activity_parts
where part_start between cast(:part_lo as date) and cast(:part_hi as date);

insert into analytics.company_activity_parts (
    part_start, company_id, last_day, company_name, country, industry_tag, days_covered, active_days,
    sum_active_users, peak_active_users, events, is_churn_risk
)
with daily as (
    select
        greatest(
            cast(date_trunc('week', cast(d.activity_date as timestamp)) as date),
            cast(date_trunc('month', cast(d.activity_date as timestamp)) as date)
        ) as part_start,
        d.activity_date,
        d.company_id,
        d.active_users,
        d.events
    from analytics.company_daily_activity as d
    where d.activity_date between cast(:part_lo as date) and cast(:part_hi as date)
),

-- one pass of aggregates; the attributes and the churn flag of the last covered day are joined after
agg as (
    select
        part_start,
        company_id,
        max(activity_date) as last_day,
        count(*) as days_covered,
        sum(case when active_users > 0 then 1 else 0 end) as active_days,
        sum(cast(active_users as bigint)) as sum_active_users,
        max(active_users) as peak_active_users,
        sum(cast(events as bigint)) as events
    from daily
    group by part_start, company_id
)

select
    a.part_start, a.company_id, a.last_day, d.company_name, d.country, d.industry_tag, a.days_covered,
    a.active_days, a.sum_active_users, a.peak_active_users, a.events, d.is_churn_risk
from agg as a
inner join analytics.company_daily_activity as d
    on d.company_id = a.company_id
    and d.activity_date = a.last_day
where d.activity_date between cast(:part_lo as date) and cast(:part_hi as date);

-- name: refresh_weekly
delete from analytics.company_weekly_activity
where week_start between cast(:week_lo as date) and cast(:week_hi as date);

insert into analytics.company_weekly_activity (
    week_start, week_end, iso_year, iso_week, company_id, company_name, country, industry_tag,
    days_in_period, days_covered, active_days, avg_active_users, peak_active_users, events,
    is_churn_risk, is_partial, built_at
)
with parts as (
    select cast(date_trunc('week', cast(p.part_start as timestamp)) as date) as period_start, p.*
    from analytics.company_activity_parts as p
    where p.part_start between cast(:week_lo as date) and cast(:week_hi as date)
),

agg as (
    select
        period_start,
        company_id,
        max(last_day) as last_day,
        sum(days_covered) as days_covered,
        sum(active_days) as active_days,
        sum(sum_active_users) as sum_active_users,
        max(peak_active_users) as peak_active_users,
        sum(events) as events
    from parts
    group by period_start, company_id
),

built as (
    select
        cast(date_trunc('week', cast(s.activity_date as timestamp)) as date) as period_start,
        count(distinct s.activity_date) as built_days
    from analytics.activity_summary_daily as s
    where s.activity_date between cast(:week_lo as date) and cast(:week_hi as date)
    group by cast(date_trunc('week', cast(s.activity_date as timestamp)) as date)
)

select
    a.period_start,
    a.period_start + 6,
    cast(extract(isoyear from a.period_start) as integer),
    cast(extract(week from a.period_start) as integer),
    a.company_id,
    p.company_name,
    p.country,
    p.industry_tag,
    7,
    a.days_covered,
    a.active_days,
    cast(a.sum_active_users as double precision) / a.days_covered,
    a.peak_active_users,
    a.events,
    p.is_churn_risk,
    b.built_days < 7,
    cast(:built_at as timestamp)
from agg as a
inner join parts as p
    on p.company_id = a.company_id
    and p.last_day = a.last_day
inner join built as b
    on b.period_start = a.period_start;

-- name: refresh_monthly
delete from analytics.company_monthly_activity
where month_start between cast(:month_lo as date) and cast(:month_hi as date);

insert into analytics.company_monthly_activity (
    month_start, month_end, company_id, company_name, country, industry_tag,
    days_in_period, days_covered, active_days, avg_active_users, peak_active_users, events,
    is_churn_risk, is_partial, built_at
)
with parts as (
    select cast(date_trunc('month', cast(p.part_start as timestamp)) as date) as period_start, p.*
    from analytics.company_activity_parts as p
    where p.part_start between cast(:month_lo as date) and cast(:month_hi as date)
),

agg as (
    select
        period_start,
        company_id,
        max(last_day) as last_day,
        sum(days_covered) as days_covered,
        sum(active_days) as active_days,
        sum(sum_active_users) as sum_active_users,
        max(peak_active_users) as peak_active_users,
        sum(events) as events
    from parts
    group by period_start, company_id
),

built as (
    select
        cast(date_trunc('month', cast(s.activity_date as timestamp)) as date) as period_start,
        cast(date_trunc('month', cast(s.activity_date as timestamp)) + interval '1 month' as date) - 1
            as period_end,
        count(distinct s.activity_date) as built_days
    from analytics.activity_summary_daily as s
    where s.activity_date between cast(:month_lo as date) and cast(:month_hi as date)
    group by 1, 2
)

select
    a.period_start,
    b.period_end,
    a.company_id,
    p.company_name,
    p.country,
    p.industry_tag,
    b.period_end - a.period_start + 1,
    a.days_covered,
    a.active_days,
    cast(a.sum_active_users as double precision) / a.days_covered,
    a.peak_active_users,
    a.events,
    p.is_churn_risk,
    b.built_days < b.period_end - a.period_start + 1,
    cast(:built_at as timestamp)
from agg as a
inner join parts as p
    on p.company_id = a.company_id
    and p.last_day = a.last_day
inner join built as b
    on b.period_start = a.period_start;
