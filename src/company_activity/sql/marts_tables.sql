-- Schema version (see warehouse/migrations.py): the weekly and monthly marts (sql/marts.sql fills them).

create table if not exists analytics.company_weekly_activity (
    week_start         date              not null,   -- the Monday of the ISO week
    week_end           date              not null,   -- its Sunday
    iso_year           integer           not null,
    iso_week           integer           not null,
    company_id         varchar           not null,
    company_name       varchar,                      -- as on the company's last covered day
    country            varchar,
    industry_tag       varchar,
    days_in_period     integer           not null,
    days_covered       integer           not null,
    active_days        integer           not null,
    avg_active_users   double precision  not null,
    peak_active_users  bigint            not null,
    events             bigint            not null,
    is_churn_risk      boolean           not null,   -- on the company's last covered day
    is_partial         boolean           not null,
    built_at           timestamp         not null
);

create table if not exists analytics.company_monthly_activity (
    month_start        date              not null,
    month_end          date              not null,
    company_id         varchar           not null,
    company_name       varchar,
    country            varchar,
    industry_tag       varchar,
    days_in_period     integer           not null,
    days_covered       integer           not null,
    active_days        integer           not null,
    avg_active_users   double precision  not null,
    peak_active_users  bigint            not null,
    events             bigint            not null,
    is_churn_risk      boolean           not null,
    is_partial         boolean           not null,
    built_at           timestamp         not null
);

-- the marts' building blocks: per company, the figures of each part of an ISO week that lies in one
-- calendar month (a week across a month's end has two parts). A build re-aggregates only the parts of
-- the days it built (at most 7 days each); weeks and months then add up at most 2 and 6 parts per company.
create table if not exists analytics.company_activity_parts (
    part_start         date              not null,   -- the later of the week's Monday and the month's 1st
    company_id         varchar           not null,
    last_day           date              not null,   -- the company's last covered day in the part
    company_name       varchar,                      -- as on last_day
    country            varchar,
    industry_tag       varchar,
    days_covered       integer           not null,
    active_days        integer           not null,
    sum_active_users   bigint            not null,
    peak_active_users  bigint            not null,
    events             bigint            not null,
    is_churn_risk      boolean           not null    -- on last_day
);

-- per day, country and industry: the figures the web UI's overview charts (rebuilt with the marts)
create table if not exists analytics.activity_summary_daily (
    activity_date      date              not null,
    country            varchar,
    industry_tag       varchar,
    companies          bigint            not null,
    active_companies   bigint            not null,
    active_users       bigint            not null,
    events             bigint            not null,
    churn_risk         bigint            not null,
    built_at           timestamp         not null
);
