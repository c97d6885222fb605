-- users: integer ids that are never reused (tokens carry them). SQLite's lower() folds only
-- ASCII, so the case-insensitive form is computed by the application and kept beside the e-mail.
create table users (
    id                  integer primary key autoincrement,
    email               text not null,
    email_normalized    text not null,
    password_hash       text,
    status              text not null default 'active',
    created_at          text not null,
    password_changed_at text,
    constraint users_status_check check (status in ('active', 'blocked')),
    constraint users_email_length check (length(email) between 3 and 254)
);

create unique index users_email_key on users (email_normalized);
