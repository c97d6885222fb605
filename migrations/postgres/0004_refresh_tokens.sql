-- refresh tokens: the keyed hash (HMAC-SHA-256 under a server secret), never the token. The
-- newest token of a family keeps its secret sealed (AEAD under the server key) so that its parent
-- presented again within the grace window gets the same token back; rotation clears it.
create table refresh_tokens (
    hash          bytea primary key,
    session_id    uuid not null references sessions (id) on delete cascade,
    parent_hash   bytea references refresh_tokens (hash) on delete cascade,
    access_jti    uuid not null,
    issued_at     timestamptz not null,
    expires_at    timestamptz not null,
    rotated_at    timestamptz,
    sealed_secret bytea,
    constraint refresh_tokens_hash_length check (octet_length(hash) = 32),
    -- one child per token: two concurrent rotations can never both insert
    constraint refresh_tokens_parent_key unique (parent_hash)
);

create index refresh_tokens_session_idx on refresh_tokens (session_id);
