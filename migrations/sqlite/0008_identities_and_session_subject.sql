-- External identities linked to local users, and the face's own subject data on a session.
create table identities (
    provider   text not null,
    subject    text not null,
    user_id    integer not null references users (id) on delete cascade,
    created_at text not null,
    constraint identities_pkey primary key (provider, subject)
);

create index identities_user_idx on identities (user_id);

alter table sessions add column subject text;
