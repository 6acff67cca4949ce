-- Builds analytics.company_daily_activity for the days :start_day ... :end_day.
-- Spec: shared/specs/company-daily-activity.md. One dialect (DuckDB and PostgreSQL).
--
-- Parameters: :start_day, :end_day (the days to build), :first_usage_day (earliest complete usage day),
-- :loaded_at (this build's timestamp; rows whose values do not change keep their old record_loaded_at).
--
-- The engine runs `inputs`, inserts the complete usage days of :start_day - 6 ... :end_day into build_days
-- (and runs `analyze_days`),
-- then one of the two candidate formulations (`candidate` for long ranges,
-- `candidate_short` for a few days: same columns, same meaning, both tested against the spec's model),
-- checks the candidate rows (quality gates), then `change_counts` (each row compared once with the
-- published one), then `publish` (which acts on that comparison), then `cleanup`.

-- name: inputs
drop table if exists build_diff;

drop table if exists build_days;

drop table if exists build_candidate;

-- the complete usage days the build reads (the days to build and the six before them): the runner asks
-- the run-state store for them and the engine inserts them here, so the build never reads ops.*
create temporary table build_days (
    activity_date date not null
);

-- name: analyze_days
-- statistics of the temporary tables (autovacuum never analyzes them): without them PostgreSQL guesses
-- thousands of build days and plans (and JIT-compiles) the candidate for tens of millions of rows
analyze build_days;

-- name: candidate
-- long ranges: one pass over every row of the range, a 7-day window per company
create temporary table build_candidate as
with build_range as (
    select min(activity_date) as first_day, max(activity_date) as last_day
    from build_days
),

-- the snapshot dates that can be in effect on a build day: those within the build's days and the last
-- one before them (not every snapshot in staging: that scan would grow with the history)
snapshots as (
    select distinct c.snapshot_date
    from stg.crm_daily as c
    where c.snapshot_date <= (select last_day from build_range)
        and c.snapshot_date >= coalesce(
            (
                select max(p.snapshot_date)
                from stg.crm_daily as p
                where p.snapshot_date <= (select first_day from build_range)
            ),
            (select first_day from build_range)
        )
),

-- the CRM snapshot in effect on each day: the latest loaded snapshot on or before it
snapshot_in_effect as (
    select
        d.activity_date,
        max(s.snapshot_date) as snapshot_date
    from build_days as d
    inner join snapshots as s
        on s.snapshot_date <= d.activity_date
    group by d.activity_date
),

crm as (
    select
        e.activity_date,
        c.company_id,
        c.company_name,
        c.country,
        c.industry_tag,
        c.last_contact_at
    from snapshot_in_effect as e
    inner join stg.crm_daily as c
        on c.snapshot_date = e.snapshot_date
),

usage as (
    select
        u.activity_date,
        u.company_id,
        u.active_users,
        u.events
    from stg.product_usage_daily as u
    inner join build_days as d
        on d.activity_date = u.activity_date
),

-- rows of a day: every company in the snapshot in effect, plus every company with usage that day
company_days as (
    select
        coalesce(crm.activity_date, usage.activity_date) as activity_date,
        coalesce(crm.company_id, usage.company_id) as company_id,
        crm.company_name,
        crm.country,
        crm.industry_tag,
        crm.last_contact_at,
        coalesce(usage.active_users, 0) as active_users,
        coalesce(usage.events, 0) as events,
        crm.company_id is not null as in_crm
    from crm
    full outer join usage
        on usage.activity_date = crm.activity_date
        and usage.company_id = crm.company_id
),

-- the window is 7 calendar days, not 7 rows: a day without a row counts 0
windowed as (
    select
        company_days.*,
        sum(active_users) over last_7_days as active_users_7d,
        sum(events) over last_7_days as events_7d,
        min(activity_date) over last_7_days as earliest_row_in_window
    from company_days
    -- ordered by a day number: an integer RANGE frame is much cheaper than a date/interval one
    window last_7_days as (
        partition by company_id
        order by activity_date - cast('2000-01-01' as date)
        range between 6 preceding and current row
    )
)

select
    activity_date,
    company_id,
    company_name,
    country,
    industry_tag,
    last_contact_at,
    active_users,
    events,
    cast(active_users_7d as bigint) as "7d_active_users",
    (
        active_users_7d = 0
        and events_7d = 0
        and earliest_row_in_window = activity_date - 6
        and activity_date - 6 >= cast(:first_usage_day as date)
    ) as is_churn_risk,
    in_crm
from windowed
where activity_date between cast(:start_day as date) and cast(:end_day as date);

-- name: candidate_short
-- a few days: the 7-day sums aggregate the usage of each day's window directly, and the "had a row on
-- D-6" test joins the rows of D-6; only the days to build and the days six before them get rows
create temporary table build_candidate as
with out_days as (
    select activity_date
    from build_days
    where activity_date between cast(:start_day as date) and cast(:end_day as date)
),

row_days as (
    select activity_date from out_days
    union
    select b.activity_date
    from out_days as o
    inner join build_days as b
        on b.activity_date = o.activity_date - 6
),

build_range as (
    select min(activity_date) as first_day, max(activity_date) as last_day
    from row_days
),

-- the snapshot dates that can be in effect on those days: the ones within them and the last one before
-- (as in `candidate`: a scan of every snapshot would grow with the history)
snapshots as (
    select distinct c.snapshot_date
    from stg.crm_daily as c
    where c.snapshot_date <= (select last_day from build_range)
        and c.snapshot_date >= coalesce(
            (
                select max(p.snapshot_date)
                from stg.crm_daily as p
                where p.snapshot_date <= (select first_day from build_range)
            ),
            (select first_day from build_range)
        )
),

snapshot_in_effect as (
    select
        d.activity_date,
        max(s.snapshot_date) as snapshot_date
    from row_days as d
    inner join snapshots as s
        on s.snapshot_date <= d.activity_date
    group by d.activity_date
),

crm as (
    select
        e.activity_date,
        c.company_id,
        c.company_name,
        c.country,
        c.industry_tag,
        c.last_contact_at
    from snapshot_in_effect as e
    inner join stg.crm_daily as c
        on c.snapshot_date = e.snapshot_date
),

usage as (
    select
        u.activity_date,
        u.company_id,
        u.active_users,
        u.events
    from stg.product_usage_daily as u
    inner join build_days as d
        on d.activity_date = u.activity_date
),

company_days as (
    select
        coalesce(crm.activity_date, usage.activity_date) as activity_date,
        coalesce(crm.company_id, usage.company_id) as company_id,
        crm.company_name,
        crm.country,
        crm.industry_tag,
        crm.last_contact_at,
        coalesce(usage.active_users, 0) as active_users,
        coalesce(usage.events, 0) as events,
        crm.company_id is not null as in_crm
    from crm
    full outer join (
        select usage.*
        from usage
        inner join row_days
            on row_days.activity_date = usage.activity_date
    ) as usage
        on usage.activity_date = crm.activity_date
        and usage.company_id = crm.company_id
),

-- usage summed over the 7 calendar days ending on each day to build
window_sums as (
    select
        o.activity_date,
        u.company_id,
        sum(u.active_users) as active_users_7d,
        sum(u.events) as events_7d
    from out_days as o
    inner join usage as u
        on u.activity_date between o.activity_date - 6 and o.activity_date
    group by o.activity_date, u.company_id
)

select
    cd.activity_date,
    cd.company_id,
    cd.company_name,
    cd.country,
    cd.industry_tag,
    cd.last_contact_at,
    cd.active_users,
    cd.events,
    cast(coalesce(ws.active_users_7d, 0) as bigint) as "7d_active_users",
    (
        coalesce(ws.active_users_7d, 0) = 0
        and coalesce(ws.events_7d, 0) = 0
        and earlier.company_id is not null
        and cd.activity_date - 6 >= cast(:first_usage_day as date)
    ) as is_churn_risk,
    cd.in_crm
from company_days as cd
left join window_sums as ws
    on ws.activity_date = cd.activity_date
    and ws.company_id = cd.company_id
left join company_days as earlier
    on earlier.activity_date = cd.activity_date - 6
    and earlier.company_id = cd.company_id
where cd.activity_date between cast(:start_day as date) and cast(:end_day as date);

-- name: change_counts
-- each candidate row compared once with the published one: new, changed or the same (`publish` acts on
-- it); per day, how many rows are new, changed, the same, and published rows that are gone
drop table if exists build_diff;

create temporary table build_diff as
select
    c.activity_date,
    c.company_id,
    case
        when t.company_id is null then 'new'
        when true
            and c.company_name is not distinct from t.company_name
            and c.country is not distinct from t.country
            and c.industry_tag is not distinct from t.industry_tag
            and c.last_contact_at is not distinct from t.last_contact_at
            and c.active_users = t.active_users
            and c.events = t.events
            and c."7d_active_users" = t."7d_active_users"
            and c.is_churn_risk = t.is_churn_risk
            then 'same'
        else 'changed'
    end as change
from build_candidate as c
left join analytics.company_daily_activity as t
    on t.activity_date = c.activity_date
    and t.company_id = c.company_id
    and t.activity_date between cast(:start_day as date) and cast(:end_day as date);

with gone as (
    select t.activity_date, count(*) as deleted
    from analytics.company_daily_activity as t
    where t.activity_date in (
            select activity_date from build_days
            where activity_date between cast(:start_day as date) and cast(:end_day as date)
        )
        and not exists (
            select 1 from build_diff as d
            where d.activity_date = t.activity_date and d.company_id = t.company_id
        )
    group by t.activity_date
),

counts as (
    select
        activity_date,
        sum(case when change = 'new' then 1 else 0 end) as inserted,
        sum(case when change = 'changed' then 1 else 0 end) as updated,
        sum(case when change = 'same' then 1 else 0 end) as unchanged
    from build_diff
    group by activity_date
)

select
    coalesce(c.activity_date, g.activity_date) as activity_date,
    coalesce(c.inserted, 0) as inserted,
    coalesce(c.updated, 0) as updated,
    coalesce(c.unchanged, 0) as unchanged,
    coalesce(g.deleted, 0) as deleted
from counts as c
full outer join gone as g
    on g.activity_date = c.activity_date
order by 1;

-- name: publish
-- after `change_counts`: published rows that are gone or changed leave; new and changed rows come in
-- with :loaded_at; rows that are the same keep their record_loaded_at
delete from analytics.company_daily_activity as t
where t.activity_date in (
        select activity_date from build_days
        where activity_date between cast(:start_day as date) and cast(:end_day as date)
    )
    and not exists (
        select 1
        from build_diff as d
        where d.activity_date = t.activity_date
            and d.company_id = t.company_id
            and d.change = 'same'
    );

insert into analytics.company_daily_activity (
    activity_date, company_id, company_name, country, industry_tag, last_contact_at,
    active_users, events, "7d_active_users", is_churn_risk, record_loaded_at
)
select
    c.activity_date, c.company_id, c.company_name, c.country, c.industry_tag, c.last_contact_at,
    c.active_users, c.events, c."7d_active_users", c.is_churn_risk, cast(:loaded_at as timestamp)
from build_candidate as c
inner join build_diff as d
    on d.activity_date = c.activity_date
    and d.company_id = c.company_id
where d.change <> 'same';

-- name: day_summary
select
    activity_date,
    count(*) as row_count,
    sum(case when is_churn_risk then 1 else 0 end) as churn_risk_count,
    sum(case when in_crm then 0 else 1 end) as missing_crm_count
from build_candidate
group by activity_date
order by activity_date;

-- name: cleanup
drop table if exists build_diff;

drop table if exists build_candidate;

drop table if exists build_days;
