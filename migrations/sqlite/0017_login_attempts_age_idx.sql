-- The sweep of old login attempts reads rows by their newest time, as on Postgres
-- (login_attempts_age_idx there is on greatest(last_failure_at, succeeded_at); SQLite's max()
-- of a NULL is NULL, so each side falls back to the other).
create index login_attempts_age_idx on login_attempts (max(coalesce(last_failure_at, succeeded_at), coalesce(succeeded_at, last_failure_at)));
