-- A test configuration (crates/storage/tests/partitions.rs): the session and refresh-token tables
-- of a freshly migrated, empty Postgres database, hash-partitioned by route (the user's id modulo
-- 65,536, see migration 0022) into four partitions each, as stock Postgres's stand-in for Citus
-- shards (docs/deploy/citus.md). Every column, check, index and constraint name of the tables
-- migrations make is kept; keys include the route, as a partitioned or distributed table's must.
create table sessions_by_route (like sessions including defaults including constraints) partition by hash (route);
create table refresh_tokens_by_route (like refresh_tokens including defaults including constraints) partition by hash (route);
drop table refresh_tokens;
drop table sessions;
alter table sessions_by_route rename to sessions;
alter table refresh_tokens_by_route rename to refresh_tokens;

alter table sessions add constraint sessions_pkey primary key (route, id);
alter table sessions add constraint sessions_user_id_fkey foreign key (user_id) references users (id) on delete cascade;
alter table sessions add constraint sessions_client_id_fkey foreign key (client_id) references clients (client_id) on delete cascade;
create index sessions_user_id_idx on sessions (user_id) where revoked_at is null;
create index sessions_revoked_at_idx on sessions (revoked_at) where revoked_at is not null;

alter table refresh_tokens add constraint refresh_tokens_pkey primary key (route, hash);
alter table refresh_tokens add constraint refresh_tokens_parent_key unique (route, parent_hash);
alter table refresh_tokens add constraint refresh_tokens_session_id_fkey
    foreign key (route, session_id) references sessions (route, id) on delete cascade;
alter table refresh_tokens add constraint refresh_tokens_parent_hash_fkey
    foreign key (route, parent_hash) references refresh_tokens (route, hash) on delete cascade;
create index refresh_tokens_session_idx on refresh_tokens (session_id);
create index refresh_tokens_sealed_idx on refresh_tokens (issued_at) where sealed_secret is not null;
create index refresh_tokens_unrouted_idx on refresh_tokens (expires_at) where not routed;

create table sessions_0 partition of sessions for values with (modulus 4, remainder 0);
create table sessions_1 partition of sessions for values with (modulus 4, remainder 1);
create table sessions_2 partition of sessions for values with (modulus 4, remainder 2);
create table sessions_3 partition of sessions for values with (modulus 4, remainder 3);
create table refresh_tokens_0 partition of refresh_tokens for values with (modulus 4, remainder 0);
create table refresh_tokens_1 partition of refresh_tokens for values with (modulus 4, remainder 1);
create table refresh_tokens_2 partition of refresh_tokens for values with (modulus 4, remainder 2);
create table refresh_tokens_3 partition of refresh_tokens for values with (modulus 4, remainder 3);
