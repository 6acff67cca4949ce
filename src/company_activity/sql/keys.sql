-- The keys of the large tables, as unique indexes. Both engines can run this file; the warehouse runs
-- it where an index pays for itself (PostgreSQL), see create_tables.sql.

create unique index if not exists crm_daily_key
    on stg.crm_daily (snapshot_date, company_id);

create unique index if not exists product_usage_daily_key
    on stg.product_usage_daily (activity_date, company_id);

create unique index if not exists company_daily_activity_key
    on analytics.company_daily_activity (activity_date, company_id);
