-- E-mail keys drop the whitespace that compatibility folding brings (Email::normalized, version
-- 4: a spacing accent such as U+02DD folds to a space and a combining mark). Rows of earlier
-- versions are normalized again at startup, which this index finds.
drop index users_email_normalized_stale_idx;
create index users_email_normalized_stale_idx on users (id) where email_normalized_version < 4;
