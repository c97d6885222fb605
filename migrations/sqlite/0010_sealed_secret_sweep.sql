-- the refresh tokens still holding a sealed secret, by age: the sweep that drops a secret once its
-- grace window has passed reads only these
create index refresh_tokens_sealed_idx on refresh_tokens (issued_at) where sealed_secret is not null;
