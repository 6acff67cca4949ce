-- Data-quality checks on the candidate rows of a build, before they are published.

-- name: candidate_checks
select
    activity_date,
    count(*) as row_count,
    count(*) - count(distinct company_id) as duplicate_keys,
    sum(case when company_id is null then 1 else 0 end) as null_keys,
    sum(case when active_users < 0 or events < 0 or "7d_active_users" < 0 then 1 else 0 end)
        as negative_counts,
    sum(case when in_crm then 0 else 1 end) as missing_crm
from build_candidate
group by activity_date
order by activity_date;

-- name: drop_candidate_day
delete from build_candidate where activity_date = cast(:day as date);

delete from build_days where activity_date = cast(:day as date);
