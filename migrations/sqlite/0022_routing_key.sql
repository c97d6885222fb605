-- The routing key: a number from 0 to 65535 derived from the user (its id modulo 65536), in every
-- session and refresh token row, and carried in the first two bytes of every refresh token's
-- secret Tessera issues from now on. A statement on the login, refresh and revocation paths names
-- it, so that a store split by user (hash partitions, Citus shards) finds a token on one part.
-- `routed` says whether the token's own bytes name its route: false for the tokens issued before
-- this migration, which are looked up without it until the last of them has expired.
alter table sessions add column route integer not null default 0;
update sessions set route = user_id % 65536;
alter table refresh_tokens add column route integer not null default 0;
alter table refresh_tokens add column routed integer not null default 0;
update refresh_tokens set route = (select s.route from sessions s where s.id = refresh_tokens.session_id);
create index refresh_tokens_unrouted_idx on refresh_tokens (expires_at) where not routed;
