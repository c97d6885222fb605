-- External identities linked to local users (a Medods user id, an identity provider's subject),
-- and the face's own subject data on a session (e.g. the Medods GUID its tokens carry).
create table identities (
    provider   text not null,
    subject    text not null,
    user_id    bigint not null references users (id) on delete cascade,
    created_at timestamptz not null,
    constraint identities_pkey primary key (provider, subject)
);

create index identities_user_idx on identities (user_id);

alter table sessions add column subject text;
