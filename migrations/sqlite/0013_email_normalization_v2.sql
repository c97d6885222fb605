-- E-mail comparison now folds compatibility forms and look-alikes (Email::normalized, version
-- 2). Rows written before carry version 1; startup normalizes them again, in the application.
alter table users add column email_normalized_version integer not null default 2;
update users set email_normalized_version = 1;
create index users_email_normalized_stale_idx on users (id) where email_normalized_version < 2;
