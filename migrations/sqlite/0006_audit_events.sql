-- append-only record of logins, refreshes, reuse detections, revocations and blocks.
create table audit_events (
    id         integer primary key autoincrement,
    at         text not null,
    kind       text not null,
    user_id    integer,
    session_id blob,
    detail     text not null default '{}'
);

create index audit_events_user_idx on audit_events (user_id, at);
