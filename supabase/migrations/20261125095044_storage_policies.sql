-- Storage policies: one row per tenant, written only through the SQL functions below so that every
-- transport (the API's direct SQL connection, PostgREST RPC) gets the same semantics.
--
-- Contract: docs/contracts/storage-policy-sql.md. Custom SQLSTATE BM412 = "storage policy version
-- mismatch" (the HTTP 412 of If-Match).

-- Supabase's roles exist on a real project; on plain PostgreSQL (tests, self-hosted without the
-- Supabase images) create them so grants and policies mean the same thing everywhere.
do $roles$
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
  -- The API's direct connection. Its password is set at deploy time (ALTER ROLE ... PASSWORD),
  -- never here.
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'botmox_api') then
    create role botmox_api login noinherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls;
  end if;
  -- A pre-existing botmox_api that could skip row-level security would void the tenant isolation
  -- below; refuse rather than silently trust it.
  if exists (
    select 1 from pg_catalog.pg_roles
    where rolname = 'botmox_api' and (rolsuper or rolbypassrls)
  ) then
    raise exception 'role botmox_api must be NOSUPERUSER and NOBYPASSRLS';
  end if;
end
$roles$;

-- Private helpers live outside the schemas PostgREST exposes.
create schema if not exists botmox;
revoke all on schema botmox from public;
grant usage on schema botmox to authenticated, botmox_api, service_role;

-- The tenant of the current request. PostgREST sets request.jwt.claims from the verified JWT; the
-- API's direct connection declares it per transaction with
--   select set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":"t1"}}', true)
-- NULL when nothing is declared, which matches no row: fail closed.
create function botmox.request_tenant_id()
returns text
language sql
stable
set search_path = ''
as $$
  select nullif(current_setting('request.jwt.claims', true), '')::jsonb -> 'app_metadata' ->> 'tenant_id'
$$;

comment on function botmox.request_tenant_id() is
  'Tenant declared by the request: request.jwt.claims -> app_metadata ->> tenant_id (NULL when absent).';

create table public.storage_policies (
  tenant_id text primary key
    constraint storage_policies_tenant_id_check check (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  -- Secrets never leave the customer machine; the column exists so the document is explicit.
  secrets text not null default 'local-only'
    constraint storage_policies_secrets_check check (secrets = 'local-only'),
  operational text not null default 'cloud'
    constraint storage_policies_operational_check check (operational in ('local', 'cloud')),
  sync_enabled boolean not null default false,
  updated_at_ms bigint not null default (floor(extract(epoch from clock_timestamp()) * 1000))::bigint,
  updated_by text not null,
  version bigint not null default 1
    constraint storage_policies_version_check check (version >= 1),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.storage_policies is
  'Per-tenant storage policy; write through storage_policy_replace/merge (docs/contracts/storage-policy-sql.md).';

-- The trigger owns the bookkeeping columns, so even a direct INSERT/UPDATE (for example through
-- PostgREST) bumps the version and stamps the time consistently.
create function botmox.storage_policies_bookkeeping()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
begin
  if tg_op = 'INSERT' then
    new.version := 1;
    new.created_at := v_now;
  else
    new.version := old.version + 1;
    new.created_at := old.created_at;
  end if;
  new.updated_at := v_now;
  new.updated_at_ms := floor(extract(epoch from v_now) * 1000)::bigint;
  return new;
end
$$;

create trigger storage_policies_bookkeeping
  before insert or update on public.storage_policies
  for each row execute function botmox.storage_policies_bookkeeping();

alter table public.storage_policies enable row level security;
alter table public.storage_policies force row level security;

-- One permissive policy per command (advisors lint multiple_permissive_policies); the tenant lookup
-- is wrapped in a sub-select so it runs once per statement (advisors lint auth_rls_initplan).
create policy storage_policies_tenant_select on public.storage_policies
  for select to authenticated, botmox_api
  using (tenant_id = (select botmox.request_tenant_id()));

create policy storage_policies_tenant_insert on public.storage_policies
  for insert to authenticated, botmox_api
  with check (tenant_id = (select botmox.request_tenant_id()));

create policy storage_policies_tenant_update on public.storage_policies
  for update to authenticated, botmox_api
  using (tenant_id = (select botmox.request_tenant_id()))
  with check (tenant_id = (select botmox.request_tenant_id()));

-- Supabase's default privileges grant ALL (TRUNCATE, DELETE, ...) on new tables to anon,
-- authenticated and service_role; start from nothing and grant exactly what each role needs.
revoke all on table public.storage_policies from public, anon, authenticated, service_role, botmox_api;
grant select, insert, update on table public.storage_policies to authenticated, botmox_api;
grant select, insert, update, delete on table public.storage_policies to service_role;
grant usage on schema public to botmox_api;

-- Shared body of replace and merge. SECURITY INVOKER: the caller's row-level security applies.
-- Atomic under READ COMMITTED: the row is locked (FOR UPDATE) before the precondition is checked,
-- and the "no row yet" race is settled by the primary key (INSERT ... ON CONFLICT DO NOTHING, then
-- lock the winner's row, which the next statement's fresh snapshot sees).
create function botmox.storage_policy_write(
  p_merge boolean,
  p_tenant_id text,
  p_updated_by text,
  p_operational text,
  p_sync_enabled boolean,
  p_if_match bigint[],
  p_if_exists boolean
)
returns setof public.storage_policies
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_current public.storage_policies;
  v_result public.storage_policies;
  v_attempt integer := 0;
begin
  loop
    v_attempt := v_attempt + 1;

    select * into v_current
    from public.storage_policies
    where tenant_id = p_tenant_id
    for update;

    if found then
      exit;
    end if;

    if p_if_match is not null or coalesce(p_if_exists, false) then
      raise exception using
        errcode = 'BM412',
        message = 'storage policy version mismatch',
        detail = 'current_version=none',
        hint = 'Read the storage policy again and retry with its current version.';
    end if;

    insert into public.storage_policies (tenant_id, operational, sync_enabled, updated_by)
    values (p_tenant_id, coalesce(p_operational, 'cloud'), coalesce(p_sync_enabled, false), p_updated_by)
    on conflict (tenant_id) do nothing
    returning * into v_result;

    if v_result.tenant_id is not null then
      return next v_result;
      return;
    end if;

    -- A concurrent transaction inserted the row first; lock it on the next pass. The row is never
    -- deleted by these functions, so a second pass finds it.
    if v_attempt >= 3 then
      raise exception using
        errcode = '40001',
        message = 'storage policy row vanished while being written; retry the transaction';
    end if;
  end loop;

  if p_if_match is not null and not (v_current.version = any (p_if_match)) then
    raise exception using
      errcode = 'BM412',
      message = 'storage policy version mismatch',
      detail = 'current_version=' || v_current.version,
      hint = 'Read the storage policy again and retry with its current version.';
  end if;

  update public.storage_policies
  set
    operational = case
      when p_merge then coalesce(p_operational, v_current.operational)
      else coalesce(p_operational, 'cloud')
    end,
    sync_enabled = case
      when p_merge then coalesce(p_sync_enabled, v_current.sync_enabled)
      else coalesce(p_sync_enabled, false)
    end,
    secrets = 'local-only',
    updated_by = p_updated_by
  where tenant_id = p_tenant_id
  returning * into v_result;

  return next v_result;
end
$$;

create function public.storage_policy_read(p_tenant_id text)
returns setof public.storage_policies
language sql
stable
security invoker
set search_path = ''
as $$
  select * from public.storage_policies where tenant_id = p_tenant_id
$$;

create function public.storage_policy_replace(
  p_tenant_id text,
  p_updated_by text,
  p_operational text default null,
  p_sync_enabled boolean default null,
  p_if_match bigint[] default null,
  p_if_exists boolean default false
)
returns setof public.storage_policies
language sql
volatile
security invoker
set search_path = ''
as $$
  select * from botmox.storage_policy_write(
    false, p_tenant_id, p_updated_by, p_operational, p_sync_enabled, p_if_match, p_if_exists)
$$;

create function public.storage_policy_merge(
  p_tenant_id text,
  p_updated_by text,
  p_operational text default null,
  p_sync_enabled boolean default null,
  p_if_match bigint[] default null,
  p_if_exists boolean default false
)
returns setof public.storage_policies
language sql
volatile
security invoker
set search_path = ''
as $$
  select * from botmox.storage_policy_write(
    true, p_tenant_id, p_updated_by, p_operational, p_sync_enabled, p_if_match, p_if_exists)
$$;

comment on function public.storage_policy_read(text) is
  'The tenant''s storage policy: 0 or 1 row.';
comment on function public.storage_policy_replace(text, text, text, boolean, bigint[], boolean) is
  'Replace: NULL fields take the defaults (cloud, false). p_if_match / p_if_exists: precondition, else SQLSTATE BM412.';
comment on function public.storage_policy_merge(text, text, text, boolean, bigint[], boolean) is
  'Merge: NULL fields keep the stored value (defaults when nothing is stored). Precondition as replace.';

-- Functions are executable by PUBLIC by default, and Supabase's default privileges grant the
-- functions in public to anon, authenticated and service_role: revoke all, then grant exactly.
revoke all on function botmox.request_tenant_id() from public, anon, authenticated, service_role;
revoke all on function botmox.storage_policies_bookkeeping() from public, anon, authenticated, service_role;
revoke all on function botmox.storage_policy_write(boolean, text, text, text, boolean, bigint[], boolean)
  from public, anon, authenticated, service_role;
revoke all on function public.storage_policy_read(text) from public, anon, authenticated, service_role;
revoke all on function public.storage_policy_replace(text, text, text, boolean, bigint[], boolean)
  from public, anon, authenticated, service_role;
revoke all on function public.storage_policy_merge(text, text, text, boolean, bigint[], boolean)
  from public, anon, authenticated, service_role;

grant execute on function botmox.request_tenant_id() to authenticated, botmox_api, service_role;
grant execute on function botmox.storage_policy_write(boolean, text, text, text, boolean, bigint[], boolean)
  to authenticated, botmox_api, service_role;
grant execute on function public.storage_policy_read(text) to authenticated, botmox_api, service_role;
grant execute on function public.storage_policy_replace(text, text, text, boolean, bigint[], boolean)
  to authenticated, botmox_api, service_role;
grant execute on function public.storage_policy_merge(text, text, text, boolean, bigint[], boolean)
  to authenticated, botmox_api, service_role;
