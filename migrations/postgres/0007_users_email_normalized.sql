-- Case-insensitive e-mail matching by the application's Unicode lowercase, not the server's
-- lower(), which folds only ASCII under the C locale: one rule on every backend.
alter table users add column email_normalized text;
update users set email_normalized = lower(email);
alter table users alter column email_normalized set not null;
drop index users_email_key;
create unique index users_email_key on users (email_normalized);
