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
-- Every data record of the file: a good row (reason null) or a bad one (reason set, values null), with its
-- first line and its bytes in the file (to copy the original text into the quarantine).
drop table if exists crm_load;

drop table if exists crm_dup;

create temporary table crm_load (
    company_id       varchar,
    company_name     varchar,
    country          varchar,
    industry_tag     varchar,
    last_contact_at  timestamp,
    source_line      bigint,
    byte_start       bigint,
    byte_end         bigint,
    reason           varchar
);

-- name: crm_load_duplicates
-- The good rows that lose to another row of the same company_id: the latest last_contact_at wins, NULL
-- being the oldest, and on a tie the later row in the file.
create temporary table crm_dup as
select source_line, company_id, kept_line, byte_start, byte_end
from (
    select
        source_line, company_id, byte_start, byte_end,
        row_number() over w as rank_in_company,
        first_value(source_line) over w as kept_line
    from crm_load
    where reason is null
    window w as (partition by company_id order by last_contact_at desc nulls last, source_line desc)
) as ranked
where rank_in_company > 1;

-- name: crm_dup_count
select count(*) from crm_dup;

-- name: crm_quarantine_page
-- The rejected records after line :after, in line order, :limit at a time.
select source_line, reason, company_id, kept_line, byte_start, byte_end
from (
    select source_line, reason, cast(null as varchar) as company_id, cast(null as bigint) as kept_line,
        byte_start, byte_end
    from crm_load
    where reason is not null
    union all
    select source_line, cast(null as varchar), company_id, kept_line, byte_start, byte_end
    from crm_dup
) as rejected
where source_line > :after
order by source_line
limit :limit;

-- name: crm_load_keep_winners
delete from crm_load
where reason is not null or source_line in (select source_line from crm_dup);

-- name: crm_load_changed
-- how many companies differ between staging and the new load (company_id is unique on both sides)
select count(*)
from (
    select company_id, company_name, country, industry_tag, last_contact_at from stg.crm_daily
    where snapshot_date = cast(:day as date)
) as s
full outer join crm_load as l on l.company_id = s.company_id
where s.company_id is null
    or l.company_id is null
    or s.company_name is distinct from l.company_name
    or s.country is distinct from l.country
    or s.industry_tag is distinct from l.industry_tag
    or s.last_contact_at is distinct from l.last_contact_at;

-- name: crm_load_winners
-- issue 13 (Spark engine): the rows kept, handed to the Spark tables
select company_id, company_name, country, industry_tag, last_contact_at, source_line
from crm_load
order by source_line;

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

drop table if exists crm_dup;

-- name: next_snapshot_after
select min(snapshot_date) from stg.crm_daily where snapshot_date > cast(:day as date);

-- name: snapshot_in_effect
select max(snapshot_date) from stg.crm_daily where snapshot_date <= cast(:day as date);

-- name: crm_day_count
select count(*) from stg.crm_daily where snapshot_date = cast(:day as date);

-- name: usage_day_count
select count(*) from stg.product_usage_daily where activity_date = cast(:day as date);
