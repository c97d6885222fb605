-- E-mail comparison now also folds capital look-alikes (Email::normalized, version 3: a small
-- capital M is an m). The application writes the version of every row it inserts; rows of
-- version 2 are normalized again at startup, which this index finds.
drop index users_email_normalized_stale_idx;
create index users_email_normalized_stale_idx on users (id) where email_normalized_version < 3;
