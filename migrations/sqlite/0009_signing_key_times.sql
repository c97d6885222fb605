-- when a signing key started and stopped signing: the key schedule counts from these
alter table signing_keys add column activated_at text;
alter table signing_keys add column retired_at text;
update signing_keys set activated_at = created_at where state in ('active', 'retired');
