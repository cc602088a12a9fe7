-- Storage policies: the caller's verified identity decides the tenant and the author of a write.
--
-- Before: `authenticated` and `botmox_api` could INSERT/UPDATE the table directly (RLS kept them in
-- their tenant, but a direct write bypassed the functions' rules), and `updated_by` was whatever the
-- caller passed in p_updated_by. Now:
-- - `authenticated` and `botmox_api` may only SELECT (their tenant's row, under RLS); every write
--   goes through storage_policy_replace / storage_policy_merge.
-- - The shared write body runs SECURITY DEFINER as `botmox_policy_writer`, a NOLOGIN role without
--   BYPASSRLS that holds the table's write privileges, so row-level security still applies inside.
-- - A write acts only on the tenant of request.jwt.claims (app_metadata.tenant_id): a p_tenant_id
--   that differs is refused with 42501 before anything is read.
-- - updated_by is request.jwt.claims ->> 'sub': the JWT subject PostgREST verified, or the uid the
--   API's own connection declares per transaction. p_updated_by is ignored (kept, now optional, so
--   callers of the first migration's interface keep working).
--
-- Contract: docs/contracts/storage-policy-sql.md.

do $roles$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'botmox_policy_writer') then
    create role botmox_policy_writer nologin noinherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls;
  end if;
  -- Same reasoning as for botmox_api: a writer that skips RLS would void the tenant isolation.
  if exists (
    select 1 from pg_catalog.pg_roles
    where rolname = 'botmox_policy_writer' and (rolsuper or rolbypassrls or rolcanlogin)
  ) then
    raise exception 'role botmox_policy_writer must be NOLOGIN, NOSUPERUSER and NOBYPASSRLS';
  end if;
  -- ALTER ... OWNER TO needs membership in the new owner unless the migrating role is a superuser
  -- (on Supabase, `postgres` is not).
  if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    execute format('grant botmox_policy_writer to %I', current_user);
  end if;
end
$roles$;

grant usage on schema botmox to botmox_policy_writer;
grant usage on schema public to botmox_policy_writer;

-- The caller's identity, from the same claims as the tenant: the JWT subject.
create function botmox.request_subject()
returns text
language sql
stable
set search_path = ''
as $$
  select nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')
$$;

comment on function botmox.request_subject() is
  'Caller declared by the request: request.jwt.claims ->> sub (NULL when absent or empty).';

revoke all on function botmox.request_subject() from public, anon, authenticated, service_role;
grant execute on function botmox.request_subject() to authenticated, botmox_api, service_role, botmox_policy_writer;
grant execute on function botmox.request_tenant_id() to botmox_policy_writer;

-- Table privileges: reads for the callers, writes for the definer only.
revoke insert, update, delete, truncate on table public.storage_policies from authenticated, botmox_api;
grant select, insert, update on table public.storage_policies to botmox_policy_writer;

alter policy storage_policies_tenant_select on public.storage_policies
  to authenticated, botmox_api, botmox_policy_writer;
alter policy storage_policies_tenant_insert on public.storage_policies
  to botmox_policy_writer;
alter policy storage_policies_tenant_update on public.storage_policies
  to botmox_policy_writer;

-- The shared body loses its p_updated_by parameter (it is private; the public wrappers below keep
-- theirs for compatibility and do not pass it on).
drop function botmox.storage_policy_write(boolean, text, text, text, boolean, bigint[], boolean);

create function botmox.storage_policy_write(
  p_merge boolean,
  p_tenant_id text,
  p_operational text,
  p_sync_enabled boolean,
  p_if_match bigint[],
  p_if_exists boolean
)
returns setof public.storage_policies
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_tenant_id text := botmox.request_tenant_id();
  v_author text := botmox.request_subject();
  v_current public.storage_policies;
  v_result public.storage_policies;
  v_attempt integer := 0;
begin
  if p_tenant_id is distinct from v_tenant_id then
    raise exception using
      errcode = '42501',
      message = 'storage policy of another tenant',
      detail = 'p_tenant_id is not the tenant of the request',
      hint = 'The tenant comes from request.jwt.claims -> app_metadata ->> tenant_id.';
  end if;
  if v_author is null then
    raise exception using
      errcode = '42501',
      message = 'storage policy write without a caller',
      detail = 'request.jwt.claims has no sub',
      hint = 'The author (updated_by) comes from request.jwt.claims ->> sub.';
  end if;

  loop
    v_attempt := v_attempt + 1;

    select * into v_current
    from public.storage_policies
    where tenant_id = v_tenant_id
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
    values (v_tenant_id, coalesce(p_operational, 'cloud'), coalesce(p_sync_enabled, false), v_author)
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
    updated_by = v_author
  where tenant_id = v_tenant_id
  returning * into v_result;

  return next v_result;
end
$$;

alter function botmox.storage_policy_write(boolean, text, text, boolean, bigint[], boolean)
  owner to botmox_policy_writer;
revoke all on function botmox.storage_policy_write(boolean, text, text, boolean, bigint[], boolean)
  from public, anon, authenticated, service_role;
grant execute on function botmox.storage_policy_write(boolean, text, text, boolean, bigint[], boolean)
  to authenticated, botmox_api, service_role;

-- p_updated_by becomes optional (and ignored); the other parameters keep names, order and defaults.
create or replace function public.storage_policy_replace(
  p_tenant_id text,
  p_updated_by text default null,
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
    false, p_tenant_id, p_operational, p_sync_enabled, p_if_match, p_if_exists)
$$;

create or replace function public.storage_policy_merge(
  p_tenant_id text,
  p_updated_by text default null,
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
    true, p_tenant_id, p_operational, p_sync_enabled, p_if_match, p_if_exists)
$$;

comment on function public.storage_policy_replace(text, text, text, boolean, bigint[], boolean) is
  'Replace the caller''s tenant: NULL fields take the defaults (cloud, false). p_tenant_id must be the '
  'tenant of request.jwt.claims (else 42501); updated_by is its sub (p_updated_by is ignored). '
  'p_if_match / p_if_exists: precondition, else SQLSTATE BM412.';
comment on function public.storage_policy_merge(text, text, text, boolean, bigint[], boolean) is
  'Merge into the caller''s tenant: NULL fields keep the stored value (defaults when nothing is stored). '
  'Tenant, author and precondition as replace.';
