-- The Spark engine's publish step (warehouse/spark/engine.py), in Spark SQL: Parquet partitions cannot
-- take the delete/insert of populate_company_daily_activity.sql's `publish`, so the engine compares the
-- candidate with the published rows here and rewrites only the day partitions that changed.
-- Same rule as `publish`: a row whose values did not change keeps its record_loaded_at; new and changed
-- rows get :loaded_at; published rows without a candidate row go away.
--
-- Views: build_candidate (the translated `candidate` query), build_days, analytics_company_daily_activity.
-- Parameters: :start_day, :end_day, :loaded_at (ISO strings).

-- name: merge
select
    coalesce(c.activity_date, t.activity_date) as day,
    c.company_id is not null as present,
    not coalesce(
        t.company_id is not null
        and c.company_id is not null
        and c.company_name <=> t.company_name
        and c.country <=> t.country
        and c.industry_tag <=> t.industry_tag
        and c.last_contact_at <=> t.last_contact_at
        and c.active_users = t.active_users
        and c.events = t.events
        and c.`7d_active_users` = t.`7d_active_users`
        and c.is_churn_risk = t.is_churn_risk,
        false
    ) as changed,
    c.activity_date,
    c.company_id,
    c.company_name,
    c.country,
    c.industry_tag,
    c.last_contact_at,
    c.active_users,
    c.events,
    c.`7d_active_users`,
    c.is_churn_risk,
    t.record_loaded_at as old_loaded_at,
    cast(:loaded_at as timestamp_ntz) as new_loaded_at
from build_candidate as c
full outer join (
    select *
    from analytics_company_daily_activity
    where activity_date between cast(:start_day as date) and cast(:end_day as date)
        and activity_date in (select activity_date from build_days)
) as t
    on c.activity_date = t.activity_date
    and c.company_id = t.company_id
