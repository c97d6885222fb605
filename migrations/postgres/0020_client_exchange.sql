-- The subject token types a client may exchange (RFC 8693), space-separated short names
-- (access_token, refresh_token); empty: it may not exchange tokens.
alter table clients add column exchange_types text not null default '';
