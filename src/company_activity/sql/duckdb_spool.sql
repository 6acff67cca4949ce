-- DuckDB only: the usage step's spool file (CSV written by raw/landing.py) read by DuckDB itself.
-- Other engines get the spool's rows streamed to their bulk load instead.

-- name: usage_load_from_spool
insert into usage_load (company_id, active_users, events)
select company_id, active_users, events
from read_csv(
    :path, header = false, auto_detect = false, delim = ',', quote = '"', escape = '"', new_line = '\n',
    columns = {'company_id': 'VARCHAR', 'active_users': 'BIGINT', 'events': 'BIGINT'}
);
