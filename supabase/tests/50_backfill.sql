-- botmox.backfill_storage_policy_*: the administrator's copy path (the cutover tool). Only
-- administrators may call them; a copy stores exactly the given fields; the write is conditional on
-- the stored version (BM412 otherwise, nothing changed); every other writer still gets the
-- trigger's bookkeeping. Runs as the superuser the harness migrates with (an administrator).
begin;
select plan(48);

-- ---------------------------------------------------------------- shape and privileges
create temporary table backfill_calls (signature text primary key);
insert into backfill_calls values
  ('botmox.backfill_storage_policy_tenants(text, integer)'),
  ('botmox.backfill_storage_policy_read(text[])'),
  ('botmox.backfill_storage_policy_write(text, text, boolean, bigint, text, bigint, bigint)');

select is(
  (select pg_catalog.pg_get_function_arguments('botmox.backfill_storage_policy_write(text, text, boolean, bigint, text, bigint, bigint)'::regprocedure)),
  'p_tenant_id text, p_operational text, p_sync_enabled boolean, p_updated_at_ms bigint, p_updated_by text, p_version bigint, p_expected_version bigint',
  'backfill_storage_policy_write has the agreed parameters, none defaulted');
select function_returns('botmox', 'backfill_storage_policy_tenants', array['text', 'integer'], 'setof text',
  'backfill_storage_policy_tenants returns setof text');
select function_returns('botmox', 'backfill_storage_policy_read', array['text[]'], 'setof storage_policies',
  'backfill_storage_policy_read returns setof storage_policies');
select is(
  (select count(*) from backfill_calls s
   join pg_catalog.pg_proc p on p.oid = s.signature::regprocedure
   where p.prosecdef and p.proowner = 'botmox_policy_copier'::regrole
     and coalesce(p.proconfig @> array['search_path=""'], false)),
  3::bigint, 'the three are SECURITY DEFINER, owned by botmox_policy_copier, search_path pinned to empty');
select is(
  (select count(*) from pg_catalog.pg_proc where proowner = 'botmox_policy_copier'::regrole),
  3::bigint, 'botmox_policy_copier owns nothing else: only these run as the copier');
select ok((select not rolcanlogin and not rolsuper and not rolbypassrls and not rolcreaterole and not rolcreatedb
           from pg_catalog.pg_roles where rolname = 'botmox_policy_copier'),
  'botmox_policy_copier cannot log in, is no superuser and cannot bypass RLS');
select is_empty(
  $$select r.rolname from pg_catalog.pg_auth_members m join pg_catalog.pg_roles r on r.oid = m.member
    where m.roleid = 'botmox_policy_copier'::regrole and not r.rolsuper$$,
  'nobody is a member of botmox_policy_copier (no session can SET ROLE to it)');
select is(
  (select array_agg(privilege_type::text order by privilege_type)
   from information_schema.role_table_grants
   where grantee = 'botmox_policy_copier' and table_schema = 'public' and table_name = 'storage_policies'),
  array['INSERT', 'SELECT', 'UPDATE'],
  'botmox_policy_copier holds select, insert, update (no delete, no truncate)');
select policy_roles_are('public', 'storage_policies', 'storage_policies_copier_select',
  array['botmox_policy_copier'], 'the copier''s select policy applies to it alone');
select policy_roles_are('public', 'storage_policies', 'storage_policies_copier_insert',
  array['botmox_policy_copier'], 'the copier''s insert policy applies to it alone');
select policy_roles_are('public', 'storage_policies', 'storage_policies_copier_update',
  array['botmox_policy_copier'], 'the copier''s update policy applies to it alone');
select is(
  (select count(*) from backfill_calls where has_function_privilege('service_role', signature, 'execute')),
  3::bigint, 'service_role (Supabase''s administrator key) may call the three');
select is_empty(
  $$select role, signature from backfill_calls
    cross join unnest(array['public', 'anon', 'authenticated', 'botmox_api', 'botmox_policy_writer']) as roles(role)
    where has_function_privilege(role, signature, 'execute')$$,
  'no API role may call them: they read every tenant and write any version');
select is(
  (select count(*) from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'public' and p.proname like 'backfill\_%'),
  0::bigint, 'nothing of the kind in public, the schema PostgREST exposes');

set local role botmox_api;
select throws_ok(
  $$select * from botmox.backfill_storage_policy_tenants(null, 10)$$,
  '42501', 'permission denied for function backfill_storage_policy_tenants', 'botmox_api cannot list the tenants');
select throws_ok(
  $$select * from botmox.backfill_storage_policy_read(array['tenant-a'])$$,
  '42501', 'permission denied for function backfill_storage_policy_read', 'botmox_api cannot read through it');
select throws_ok(
  $$select * from botmox.backfill_storage_policy_write('tenant-a', 'local', true, 5, 'eve', 99, null)$$,
  '42501', 'permission denied for function backfill_storage_policy_write', 'botmox_api cannot copy a row');
reset role;
set local role authenticated;
set local request.jwt.claims = '{"sub": "eve", "role": "authenticated", "app_metadata": {"tenant_id": "tenant-a"}}';
select throws_ok(
  $$select * from botmox.backfill_storage_policy_write('tenant-a', 'local', true, 5, 'eve', 99, null)$$,
  '42501', 'permission denied for function backfill_storage_policy_write',
  'authenticated cannot copy a row, even into its own tenant');
select throws_ok(
  $$select * from botmox.backfill_storage_policy_read(array['tenant-a'])$$,
  '42501', null, 'authenticated cannot read through it');
reset role;
set local role anon;
select throws_ok($$select * from botmox.backfill_storage_policy_tenants(null, 10)$$, '42501', null,
  'anon cannot list the tenants');
reset role;
reset request.jwt.claims;
select is((select count(*) from public.storage_policies), 0::bigint, 'the refused calls wrote nothing');

-- ---------------------------------------------------------------- the copy stores what it is given
create function pg_temp.row_of(p_tenant text) returns text language sql as $$
  select format('%s/%s/%s/%s/%s', operational, sync_enabled, updated_at_ms, updated_by, version)
  from public.storage_policies where tenant_id = p_tenant
$$;
create function pg_temp.bm412_detail(statement text) returns text language plpgsql as $$
declare
  v_detail text;
begin
  execute statement;
  return 'no error';
exception when sqlstate 'BM412' then
  get stacked diagnostics v_detail = pg_exception_detail;
  return v_detail;
end
$$;

select results_eq(
  $$select tenant_id, operational, sync_enabled, updated_at_ms, updated_by, version, secrets
    from botmox.backfill_storage_policy_write('tenant-a', 'local', true, 1700000000123, 'alice', 7, null)$$,
  $$values ('tenant-a'::text, 'local'::text, true, 1700000000123::bigint, 'alice'::text, 7::bigint, 'local-only'::text)$$,
  'insert (expected NULL, nothing stored): returns the row exactly as given');
select is(pg_temp.row_of('tenant-a'), 'local/t/1700000000123/alice/7',
  'the stored row carries the given version and updated_at_ms (the trigger did not bump them)');
select is(
  (select updated_at from public.storage_policies where tenant_id = 'tenant-a'),
  pg_catalog.to_timestamp(1700000000.123), 'updated_at is the instant of updated_at_ms');

select is(pg_temp.bm412_detail(
    $$select * from botmox.backfill_storage_policy_write('tenant-a', 'cloud', false, 1, 'mallory', 1, null)$$),
  'current_version=7', 'expected NULL on a stored row: BM412 with the current version');
select is(pg_temp.bm412_detail(
    $$select * from botmox.backfill_storage_policy_write('tenant-a', 'cloud', false, 1, 'mallory', 1, 6)$$),
  'current_version=7', 'expected 6 when 7 is stored: BM412 with the current version');
select throws_ok(
  $$select * from botmox.backfill_storage_policy_write('tenant-a', 'cloud', false, 1, 'mallory', 1, 5)$$,
  'BM412', 'storage policy version mismatch', 'the conflict is BM412 with the API''s message');
select is(pg_temp.row_of('tenant-a'), 'local/t/1700000000123/alice/7', 'the refused copies changed nothing');

select results_eq(
  $$select operational, sync_enabled, updated_at_ms, updated_by, version
    from botmox.backfill_storage_policy_write('tenant-a', 'cloud', false, 1600000000000, 'bob', 3, 7)$$,
  $$values ('cloud'::text, false, 1600000000000::bigint, 'bob'::text, 3::bigint)$$,
  'update (expected = stored version): stores the given fields, an older time and a lower version included');
select is(pg_temp.row_of('tenant-a'), 'cloud/f/1600000000000/bob/3', 'the row is exactly the copy');

select is(pg_temp.bm412_detail(
    $$select * from botmox.backfill_storage_policy_write('tenant-n', 'local', true, 5, 'nina', 2, 1)$$),
  'current_version=none', 'expected 1 when nothing is stored: BM412, none');
select is((select count(*) from public.storage_policies where tenant_id = 'tenant-n'), 0::bigint,
  'the refused copy created nothing');

select throws_ok(
  $$select * from botmox.backfill_storage_policy_write('tenant-e', 'local', true, 5, '', 1, null)$$,
  '22023', 'storage policy copy without an author', 'an empty updated_by is refused');
select throws_ok(
  $$select * from botmox.backfill_storage_policy_write('tenant-e', 'local', true, -1, 'e', 1, null)$$,
  '22023', 'storage policy copy with an invalid time', 'a negative updated_at_ms is refused');
select throws_ok(
  $$select * from botmox.backfill_storage_policy_write('tenant-e', 'local', true, 5, 'e', 0, null)$$,
  '23514', null, 'version 0 violates storage_policies_version_check');
select throws_ok(
  $$select * from botmox.backfill_storage_policy_write('tenant-e', 'sideways', true, 5, 'e', 1, null)$$,
  '23514', null, 'an invalid operational violates its check');
select throws_ok(
  $$select * from botmox.backfill_storage_policy_write('Tenant E', 'local', true, 5, 'e', 1, null)$$,
  '23514', null, 'an invalid tenant id violates its check');

-- ---------------------------------------------------------------- listing and reading
select lives_ok(
  $$select botmox.backfill_storage_policy_write(t, 'cloud', false, 1, 'u', 1, null)
    from unnest(array['b', 'a_1', 'a0', 'a-1', 'c']) as t$$,
  'copies of five more tenants');
select is(
  (select array_agg(t) from botmox.backfill_storage_policy_tenants(null, 100) as t),
  array['a-1', 'a0', 'a_1', 'b', 'c', 'tenant-a'],
  'every tenant with a row, in byte order whatever the collation');
select is(
  (select array_agg(t) from botmox.backfill_storage_policy_tenants(null, 2) as t),
  array['a-1', 'a0'], 'at most p_limit');
select is(
  (select array_agg(t) from botmox.backfill_storage_policy_tenants('a0', 3) as t),
  array['a_1', 'b', 'c'], 'after p_after, which is left out');
select is(
  (select array_agg(t) from botmox.backfill_storage_policy_tenants('a00', 2) as t),
  array['a_1', 'b'], 'p_after need not be a stored tenant');
select is_empty($$select * from botmox.backfill_storage_policy_tenants('tenant-a', 10)$$, 'nothing after the last');
select results_eq(
  $$select tenant_id, version from botmox.backfill_storage_policy_read(array['tenant-a', 'b', 'missing'])
    order by tenant_id$$,
  $$values ('b'::text, 1::bigint), ('tenant-a'::text, 3::bigint)$$,
  'read: the rows of the tenants that have one, whatever the claims (none here)');

set local role service_role;
select results_eq(
  $$select updated_by, version from botmox.backfill_storage_policy_write('c', 'local', true, 9, 'svc', 12, 1)$$,
  $$values ('svc'::text, 12::bigint)$$, 'service_role may copy through the function');

-- ---------------------------------------------------------------- the trigger, for everyone else
update public.storage_policies set updated_at_ms = 5, version = 100 where tenant_id = 'c';
reset role;
select ok(
  (select version = 13 and updated_at_ms > 1700000000000 from public.storage_policies where tenant_id = 'c'),
  'service_role''s direct update: the trigger still bumps the version and stamps the time');

set local role botmox_api;
select results_eq(
  $$select version, updated_by
    from botmox.api_storage_policy_merge('{"sub": "anna", "app_metadata": {"tenant_id": "tenant-a"}}',
      'tenant-a', 'local', null, array[3]::bigint[], false)$$,
  $$values (4::bigint, 'anna'::text)$$,
  'the API''s write after a copy: If-Match on the copied version, the trigger bumps it to 4');
reset role;
select ok(
  (select updated_at_ms > 1700000000000 from public.storage_policies where tenant_id = 'tenant-a'),
  'and stamps the time of the write');

select * from finish();
rollback;
