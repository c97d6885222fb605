-- Where a user came from: the deployment an import carried it over from ('django', 'flask'), or
-- null for a user registered here. A legacy token (minted by the original library) is honoured
-- only for a user of its own deployment, and only once that deployment's import has finished.
alter table users add column origin text;

create table imports (
    origin      text primary key,
    started_at  text not null,
    finished_at text
);
