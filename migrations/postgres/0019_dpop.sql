-- DPoP (RFC 9449): the key a session's tokens are bound to (its RFC 7638 thumbprint), whether a
-- client must bind its tokens, and the proofs seen, each used once on any instance until its
-- window ends (key: a keyed hash of the key's thumbprint and the proof's jti).
alter table sessions add column dpop_jkt text;
alter table clients add column require_dpop boolean not null default false;
create table dpop_proofs (
    proof_key  bytea primary key,
    expires_at timestamptz not null
);
create index dpop_proofs_expires_idx on dpop_proofs (expires_at);
