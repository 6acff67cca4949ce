-- Loading staging tables. Each load replaces one day in one transaction (the caller's).

-- name: usage_load_create
drop table if exists usage_load;

create temporary table usage_load (
    company_id    varchar,
    active_users  bigint,
    events        bigint
);

-- name: usage_load_conflicts
-- companies with two different records on the day: the day cannot be trusted
select company_id
from usage_load
group by company_id
having min(active_users) <> max(active_users) or min(events) <> max(events)
order by company_id
limit 10;

-- name: usage_load_changed
-- how many (company, values) differ between staging and the new load, both ways
select count(*) from (
    (
        select company_id, active_users, events from stg.product_usage_daily
        where activity_date = cast(:day as date)
        except
        select company_id, active_users, events from usage_load
    )
    union all
    (
        select company_id, active_users, events from usage_load
        except
        select company_id, active_users, events from stg.product_usage_daily
        where activity_date = cast(:day as date)
    )
) as diff;

-- name: usage_replace_day
delete from stg.product_usage_daily
where activity_date = cast(:day as date);

insert into stg.product_usage_daily (activity_date, company_id, active_users, events, raw_run_id, loaded_at)
select distinct cast(:day as date), company_id, active_users, events, :raw_run_id, cast(:loaded_at as timestamp)
from usage_load;

-- name: usage_load_drop
drop table if exists usage_load;

-- name: crm_load_create
drop table if exists crm_load;

create temporary table crm_load (
    company_id       varchar,
    company_name     varchar,
    country          varchar,
    industry_tag     varchar,
    last_contact_at  timestamp,
    source_line      integer
);

-- name: crm_load_changed
select count(*) from (
    (
        select company_id, company_name, country, industry_tag, last_contact_at from stg.crm_daily
        where snapshot_date = cast(:day as date)
        except
        select company_id, company_name, country, industry_tag, last_contact_at from crm_load
    )
    union all
    (
        select company_id, company_name, country, industry_tag, last_contact_at from crm_load
        except
        select company_id, company_name, country, industry_tag, last_contact_at from stg.crm_daily
        where snapshot_date = cast(:day as date)
    )
) as diff;

-- name: crm_replace_day
delete from stg.crm_daily
where snapshot_date = cast(:day as date);

insert into stg.crm_daily (
    snapshot_date, company_id, company_name, country, industry_tag, last_contact_at,
    source_file, source_line, loaded_at, run_id
)
select
    cast(:day as date), company_id, company_name, country, industry_tag, last_contact_at,
    :source_file, source_line, cast(:loaded_at as timestamp), :run_id
from crm_load;

-- name: crm_load_drop
drop table if exists crm_load;

-- name: next_snapshot_after
select min(snapshot_date) from stg.crm_daily where snapshot_date > cast(:day as date);

-- name: snapshot_in_effect
select max(snapshot_date) from stg.crm_daily where snapshot_date <= cast(:day as date);
