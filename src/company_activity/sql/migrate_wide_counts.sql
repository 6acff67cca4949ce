-- Schema version 2: usage counts are 64-bit end to end (issue 9, "wide counts").
-- The spec's tables say INTEGER; two days of active_users near 2^31 overflowed the 7-day sum, and the API
-- contract only says "int >= 0", so staging and analytics hold BIGINT (0 .. 2^63 - 1, checked when a page
-- is parsed). One dialect: DuckDB and PostgreSQL both run this file. Existing rows keep their values.

alter table stg.product_usage_daily alter column active_users type bigint;
alter table stg.product_usage_daily alter column events type bigint;

alter table analytics.company_daily_activity alter column active_users type bigint;
alter table analytics.company_daily_activity alter column events type bigint;
alter table analytics.company_daily_activity alter column "7d_active_users" type bigint;
