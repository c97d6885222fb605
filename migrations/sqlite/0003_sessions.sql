-- sessions: one per login, the family of every token issued from it (uuid as 16-byte blob).
create table sessions (
    id                  blob primary key,
    user_id             integer not null references users (id) on delete cascade,
    client_id           text references clients (client_id) on delete cascade,
    face                text not null,
    profile             text not null,
    access_ttl_seconds  integer not null,
    refresh_ttl_seconds integer not null,
    created_at          text not null,
    expires_at          text not null,
    last_refresh_at     text,
    ip                  text,
    user_agent          text,
    revoked_at          text,
    revoked_reason      text,
    constraint sessions_ttl_check check (access_ttl_seconds > 0 and refresh_ttl_seconds > access_ttl_seconds)
);

create index sessions_user_id_idx on sessions (user_id) where revoked_at is null;
create index sessions_revoked_at_idx on sessions (revoked_at) where revoked_at is not null;
