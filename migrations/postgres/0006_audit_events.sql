-- append-only record of logins, refreshes, reuse detections, revocations and blocks.
create table audit_events (
    id         bigint generated always as identity primary key,
    at         timestamptz not null,
    kind       text not null,
    user_id    bigint,
    session_id uuid,
    detail     jsonb not null default '{}'
);

create index audit_events_user_idx on audit_events (user_id, at);
