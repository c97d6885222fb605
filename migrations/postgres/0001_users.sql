-- users: integer ids (the dialects expose them), e-mail unique case-insensitively.
create table users (
    id                  bigint generated always as identity primary key,
    email               text not null,
    password_hash       text,
    status              text not null default 'active',
    created_at          timestamptz not null,
    password_changed_at timestamptz,
    constraint users_status_check check (status in ('active', 'blocked')),
    constraint users_email_length check (char_length(email) between 3 and 254)
);

create unique index users_email_key on users (lower(email));
