-- The pair a rotation answered, sealed under the server key beside the child's sealed secret and
-- dropped with it after the grace window: a retry within the window gets the same bytes back
-- without signing again (so signatures need not be deterministic).
alter table refresh_tokens add column sealed_pair blob;
