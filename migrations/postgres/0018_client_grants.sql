-- What a client may ask for in the client_credentials grant: scopes and audiences, each a
-- space-separated list (empty: none). A client with no audience cannot use the grant.
alter table clients add column scopes text not null default '';
alter table clients add column audiences text not null default '';
