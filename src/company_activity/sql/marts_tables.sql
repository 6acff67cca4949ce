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
