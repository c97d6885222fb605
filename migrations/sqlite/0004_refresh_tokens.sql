-- refresh tokens: the keyed hash, never the token; the newest of a family keeps its secret
-- sealed for the grace window, and rotation clears it.
create table refresh_tokens (
    hash          blob primary key,
    session_id    blob not null references sessions (id) on delete cascade,
    parent_hash   blob references refresh_tokens (hash) on delete cascade,
    access_jti    blob not null,
    issued_at     text not null,
    expires_at    text not null,
    rotated_at    text,
    sealed_secret blob,
    constraint refresh_tokens_hash_length check (length(hash) = 32),
    -- one child per token: two rotations can never both insert
    constraint refresh_tokens_parent_key unique (parent_hash)
);

create index refresh_tokens_session_idx on refresh_tokens (session_id);
