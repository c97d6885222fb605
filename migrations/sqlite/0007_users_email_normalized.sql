-- Nothing to do: SQLite's users table has had email_normalized and its unique index since 0001.
-- This file keeps the two migration sets numbered alike (Postgres added the column here).
select 1;
