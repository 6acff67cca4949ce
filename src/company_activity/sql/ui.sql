-- The web UI's reads (company_activity.web). One dialect: DuckDB and PostgreSQL both run these as they are.
-- Filters given as NULL match everything.

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

-- name: churn_list
-- the churn-risk companies as of :day, their attributes on :day, the daily active users of the 14 days
-- ending on :day (t13 … t0; NULL where the company had no row) and their last day with usage (active users
-- or events) since :first_day, the first day loaded (NULL: none in the warehouse). Bounded scans only:
-- * recent: the daily rows of :window_start … :day (:window_start = the 1st of the month of :day - 13, so
--   at most 45 days), of the day's churn-risk companies only;
-- * earlier_month: for those without usage there, the last month before :window_start with usage, from the
--   monthly mart (a row per company and month: a 30th of the daily rows; months wholly before the window);
-- * earlier: the daily rows from that month to the window, of those companies only. A company never seen
--   using the product has no such month and costs nothing here.
with risk as (
    select company_id from analytics.company_daily_activity
    where activity_date = cast(:day as date) and is_churn_risk
),
recent as (
    select
        company_id,
        max(case when activity_date = cast(:day as date) then company_name end) as company_name,
        max(case when activity_date = cast(:day as date) then country end) as country,
        max(case when activity_date = cast(:day as date) then industry_tag end) as industry_tag,
        max(case when activity_date = cast(:day as date) then last_contact_at end) as last_contact_at,
        max(case when active_users > 0 or events > 0 then activity_date end) as recent_usage,
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
    where activity_date between cast(:window_start as date) and cast(:day as date)
        and company_id in (select company_id from risk)
    group by company_id
),
earlier_month as (
    select m.company_id, max(m.month_start) as month_start
    from analytics.company_monthly_activity as m
    where m.month_start >= cast(:first_month as date)
        and m.month_end < cast(:window_start as date)
        and (m.active_days > 0 or m.events > 0)
        and m.company_id in (select r.company_id from recent as r where r.recent_usage is null)
    group by m.company_id
),
earlier as (
    select d.company_id, max(d.activity_date) as last_usage
    from analytics.company_daily_activity as d
    join earlier_month as e on e.company_id = d.company_id and d.activity_date >= e.month_start
    where d.activity_date between cast(:first_day as date) and cast(:window_start as date) - 1
        and (d.active_users > 0 or d.events > 0)
    group by d.company_id
)
select r.*, coalesce(r.recent_usage, e.last_usage) as last_usage
from recent as r
left join earlier as e on e.company_id = r.company_id;

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
