-- Indexes of the marts' schema version, where the warehouse keeps indexes (PostgreSQL): the marts' keys
-- and one company's history (the web UI's company page).

create unique index if not exists company_weekly_activity_key
    on analytics.company_weekly_activity (week_start, company_id);

create unique index if not exists company_monthly_activity_key
    on analytics.company_monthly_activity (month_start, company_id);

create unique index if not exists company_activity_parts_key
    on analytics.company_activity_parts (part_start, company_id);

create index if not exists activity_summary_daily_day
    on analytics.activity_summary_daily (activity_date);

create index if not exists company_daily_activity_company
    on analytics.company_daily_activity (company_id, activity_date);
