-- OAuth clients; a confidential client's secret is stored only as its keyed hash.
create table clients (
    client_id   text primary key,
    name        text not null,
    secret_hash blob,
    profile     text not null,
    created_at  text not null,
    constraint clients_secret_hash_length check (secret_hash is null or length(secret_hash) = 32)
);
