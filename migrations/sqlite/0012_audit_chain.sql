-- The audit trail's hash chain: a sealer gives each event, in turn, its place (seq), the previous
-- event's hash and its own (an HMAC under a key derived from the master key). Unsealed events
-- have none yet.
alter table audit_events add column seq integer;
alter table audit_events add column prev_hash blob;
alter table audit_events add column hash blob;
create unique index audit_events_seq_key on audit_events (seq);
create index audit_events_unsealed_idx on audit_events (id) where seq is null;
create index audit_events_at_idx on audit_events (at);
