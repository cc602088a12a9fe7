"""What a Supabase project has before any user migration, emulated on plain PostgreSQL.

Supabase's platform creates the API roles and sets default privileges so that every new table,
function and sequence in ``public`` is granted to ``anon``, ``authenticated`` and ``service_role``;
row-level security and explicit revokes are what protect data. The harness reproduces that in the
template database before ``supabase migration up``, so the migrations are tested against the grants
they will meet on Supabase (and the advisors, which look for tables ``anon`` can read, see real
exposure). ``MigratedPostgres.start(platform=False)`` skips it to test a bare PostgreSQL.
"""

from __future__ import annotations

from psycopg import sql

SUPABASE_PLATFORM_BASELINE = sql.SQL(
    """
do $platform$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end
$platform$;

grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to anon, authenticated, service_role;
"""
)
