-- Failed password attempts per account (the normalised login, whether or not such a user exists)
-- and client address; ip '*' is the account as a whole. Locks live here so that they hold across
-- instances. A row with succeeded_at is an address the owner has logged in from.
create table login_attempts (
    account         text not null,
    ip              text not null,
    failures        integer not null default 0,
    last_failure_at text,
    locked_until    text,
    succeeded_at    text,
    primary key (account, ip)
);
