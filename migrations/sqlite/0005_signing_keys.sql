-- signing keys: material sealed under the server key, never in the clear.
create table signing_keys (
    kid           text primary key,
    alg           text not null,
    state         text not null,
    sealed_secret blob not null,
    created_at    text not null,
    constraint signing_keys_state_check check (state in ('next', 'active', 'retired'))
);
