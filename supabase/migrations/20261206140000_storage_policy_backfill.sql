-- Storage policies: what an administrator needs to copy every tenant's policy between backends (the
-- cutover tool, `python -m botmox_api.cutover`, over an administrator's SUPABASE_DB_URL).
--
-- A copy must store a row EXACTLY as the source holds it (operational, sync_enabled, updated_at_ms,
-- updated_by, version): otherwise the API's ETags would change across a flip and clients' If-Match
-- would fail. The bookkeeping trigger forces version and updated_at_ms for every writer, so the copy
-- path has to be recognised by the trigger in a way no API or PostgREST caller can fake:
--
-- - `botmox_policy_copier`: a dedicated NOLOGIN role (no BYPASSRLS, no members) that owns the
--   SECURITY DEFINER functions below and nothing else. Inside them, and only there, `current_user` is
--   `botmox_policy_copier`; a session can become that role only by SET ROLE, which needs membership,
--   and nobody is granted it (a non-superuser migration owner is, as for botmox_policy_writer, only
--   so that it may hand the functions over; it is the administrator anyway). `current_user` cannot be
--   set by a claim, a GUC or a parameter, unlike anything a PostgREST request controls.
-- - The trigger keeps the given version and updated_at_ms when `current_user` is the copier, and
--   bumps them as before for every other role (service_role's direct writes included).
-- - Row-level security stays on for the copier: it gets a policy per command of its own, scoped to
--   it, instead of BYPASSRLS; the API's policies (authenticated, botmox_api, botmox_policy_writer)
--   are unchanged.
-- - EXECUTE for service_role (Supabase's administrator key) and the migration owner only: a
--   superuser runs anything; a non-superuser owner gets it explicitly below. anon, authenticated and
--   botmox_api may not call them (they would read every tenant and write any version).
-- - The functions validate what the table cannot: updated_by not empty, updated_at_ms >= 0 (22023).
--
-- Contract: docs/contracts/storage-policy-sql.md. Adds objects only: the API already running is
-- unaffected.

do $roles$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'botmox_policy_copier') then
    create role botmox_policy_copier nologin noinherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls;
  end if;
  -- A copier that can log in would let a session be the copier without calling its functions.
  if exists (
    select 1 from pg_catalog.pg_roles
    where rolname = 'botmox_policy_copier' and (rolsuper or rolbypassrls or rolcanlogin)
  ) then
    raise exception 'role botmox_policy_copier must be NOLOGIN, NOSUPERUSER and NOBYPASSRLS';
  end if;
  -- ALTER ... OWNER TO needs membership in the new owner unless the migrating role is a superuser.
  if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    execute format('grant botmox_policy_copier to %I', current_user);
  end if;
end
$roles$;

grant usage on schema botmox to botmox_policy_copier;
grant usage on schema public to botmox_policy_copier;
grant select, insert, update on table public.storage_policies to botmox_policy_copier;

-- The copier sees and writes every tenant (it copies all of them); these policies apply to it alone.
create policy storage_policies_copier_select on public.storage_policies
  for select to botmox_policy_copier
  using (true);

create policy storage_policies_copier_insert on public.storage_policies
  for insert to botmox_policy_copier
  with check (true);

create policy storage_policies_copier_update on public.storage_policies
  for update to botmox_policy_copier
  using (true)
  with check (true);

-- The trigger, as before, except for the copier: it keeps the version and updated_at_ms it was
-- given (updated_at follows updated_at_ms, the same instant, as for every other write).
create or replace function botmox.storage_policies_bookkeeping()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
begin
  if tg_op = 'INSERT' then
    new.created_at := v_now;
  else
    new.created_at := old.created_at;
  end if;
  if current_user = 'botmox_policy_copier' then
    new.updated_at := pg_catalog.to_timestamp(new.updated_at_ms / 1000.0);
    return new;
  end if;
  if tg_op = 'INSERT' then
    new.version := 1;
  else
    new.version := old.version + 1;
  end if;
  new.updated_at := v_now;
  new.updated_at_ms := floor(extract(epoch from v_now) * 1000)::bigint;
  return new;
end
$$;

-- The ids of the tenants with a stored policy, in byte order (COLLATE "C", the order a client sorts
-- strings in, whatever the database's collation), after p_after (NULL: from the first), at most
-- p_limit of them.
create function botmox.backfill_storage_policy_tenants(p_after text, p_limit integer)
returns setof text
language sql
stable
security definer
set search_path = ''
as $$
  select tenant_id
  from public.storage_policies
  where p_after is null or tenant_id collate "C" > p_after collate "C"
  order by tenant_id collate "C"
  limit greatest(p_limit, 0)
$$;

-- The stored rows of the given tenants (tenants with nothing stored have no row).
create function botmox.backfill_storage_policy_read(p_tenant_ids text[])
returns setof public.storage_policies
language sql
stable
security definer
set search_path = ''
as $$
  select * from public.storage_policies where tenant_id = any (p_tenant_ids)
$$;

-- Store one row exactly as given, if the stored version is p_expected_version (NULL: no row).
-- Otherwise BM412 with the current version, as the API's writes raise it, and nothing changes.
-- Atomic under READ COMMITTED: an insert settles the "no row yet" race on the primary key (ON
-- CONFLICT DO NOTHING waits for a concurrent inserter, whose row the next statement then sees); an
-- update locks the row (FOR UPDATE) before comparing versions.
create function botmox.backfill_storage_policy_write(
  p_tenant_id text,
  p_operational text,
  p_sync_enabled boolean,
  p_updated_at_ms bigint,
  p_updated_by text,
  p_version bigint,
  p_expected_version bigint
)
returns setof public.storage_policies
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_current public.storage_policies;
  v_result public.storage_policies;
begin
  if p_updated_by is null or p_updated_by = '' then
    raise exception using
      errcode = '22023',
      message = 'storage policy copy without an author',
      detail = 'p_updated_by must be a non-empty string';
  end if;
  if p_updated_at_ms is null or p_updated_at_ms < 0 then
    raise exception using
      errcode = '22023',
      message = 'storage policy copy with an invalid time',
      detail = 'p_updated_at_ms must be an epoch in milliseconds, >= 0';
  end if;

  if p_expected_version is null then
    insert into public.storage_policies
      (tenant_id, secrets, operational, sync_enabled, updated_at_ms, updated_by, version)
    values
      (p_tenant_id, 'local-only', p_operational, p_sync_enabled, p_updated_at_ms, p_updated_by, p_version)
    on conflict (tenant_id) do nothing
    returning * into v_result;

    if v_result.tenant_id is null then
      select * into v_current from public.storage_policies where tenant_id = p_tenant_id;
      raise exception using
        errcode = 'BM412',
        message = 'storage policy version mismatch',
        detail = 'current_version=' || coalesce(v_current.version::text, 'none'),
        hint = 'Read the storage policy again and retry with its current version.';
    end if;
    return next v_result;
    return;
  end if;

  select * into v_current from public.storage_policies where tenant_id = p_tenant_id for update;
  if not found or v_current.version <> p_expected_version then
    raise exception using
      errcode = 'BM412',
      message = 'storage policy version mismatch',
      detail = 'current_version=' || coalesce(v_current.version::text, 'none'),
      hint = 'Read the storage policy again and retry with its current version.';
  end if;

  update public.storage_policies
  set
    secrets = 'local-only',
    operational = p_operational,
    sync_enabled = p_sync_enabled,
    updated_at_ms = p_updated_at_ms,
    updated_by = p_updated_by,
    version = p_version
  where tenant_id = p_tenant_id
  returning * into v_result;

  return next v_result;
end
$$;

comment on function botmox.backfill_storage_policy_tenants(text, integer) is
  'Administrators only: tenant ids with a stored policy, byte order, after p_after, at most p_limit.';
comment on function botmox.backfill_storage_policy_read(text[]) is
  'Administrators only: the stored rows of the given tenants (every tenant, no claims).';
comment on function botmox.backfill_storage_policy_write(text, text, boolean, bigint, text, bigint, bigint) is
  'Administrators only: store the row exactly as given (version and updated_at_ms included) if the stored '
  'version is p_expected_version (NULL: no row), else SQLSTATE BM412 with current_version=<n>|none.';

alter function botmox.backfill_storage_policy_tenants(text, integer) owner to botmox_policy_copier;
alter function botmox.backfill_storage_policy_read(text[]) owner to botmox_policy_copier;
alter function botmox.backfill_storage_policy_write(text, text, boolean, bigint, text, bigint, bigint)
  owner to botmox_policy_copier;

revoke all on function botmox.backfill_storage_policy_tenants(text, integer)
  from public, anon, authenticated, service_role, botmox_api;
revoke all on function botmox.backfill_storage_policy_read(text[])
  from public, anon, authenticated, service_role, botmox_api;
revoke all on function botmox.backfill_storage_policy_write(text, text, boolean, bigint, text, bigint, bigint)
  from public, anon, authenticated, service_role, botmox_api;

grant execute on function botmox.backfill_storage_policy_tenants(text, integer) to service_role;
grant execute on function botmox.backfill_storage_policy_read(text[]) to service_role;
grant execute on function botmox.backfill_storage_policy_write(text, text, boolean, bigint, text, bigint, bigint)
  to service_role;

-- A non-superuser migration owner (Supabase's `postgres`) is the administrator the cutover tool runs
-- as: it gets EXECUTE by name, not through its membership in the copier (which exists only to hand
-- the functions over, and which an owner without INHERIT would not use).
do $owner$
begin
  if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    execute format(
      'grant execute on function botmox.backfill_storage_policy_tenants(text, integer) to %I', current_user);
    execute format(
      'grant execute on function botmox.backfill_storage_policy_read(text[]) to %I', current_user);
    execute format(
      'grant execute on function botmox.backfill_storage_policy_write(text, text, boolean, bigint, text, bigint, bigint) to %I',
      current_user);
  end if;
end
$owner$;
