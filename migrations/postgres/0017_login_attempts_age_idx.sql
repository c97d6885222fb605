-- Nothing to do: Postgres has had login_attempts_age_idx since 0011. This file keeps the two
-- migration sets numbered alike (SQLite added its index here).
select 1;
