-- botmox.api_storage_policy_read / replace / merge: the API's one-statement calls. Only botmox_api
-- may call them; they declare the claims they are given and then behave exactly as the public
-- functions (row-level security as the caller, 42501 on another tenant, BM412 with its detail,
-- updated_by from sub).
begin;
select plan(43);

-- ---------------------------------------------------------------- shape and privileges
select function_returns('botmox', 'api_storage_policy_read', array['text', 'text'], 'setof storage_policies',
  'api_storage_policy_read returns setof storage_policies');
select function_returns('botmox', 'api_storage_policy_replace',
  array['text', 'text', 'text', 'boolean', 'bigint[]', 'boolean'], 'setof storage_policies',
  'api_storage_policy_replace returns setof storage_policies');
select function_returns('botmox', 'api_storage_policy_merge',
  array['text', 'text', 'text', 'boolean', 'bigint[]', 'boolean'], 'setof storage_policies',
  'api_storage_policy_merge returns setof storage_policies');
select is(
  (select pg_catalog.pg_get_function_arguments('botmox.api_storage_policy_merge(text, text, text, boolean, bigint[], boolean)'::regprocedure)),
  'p_claims text, p_tenant_id text, p_operational text, p_sync_enabled boolean, p_if_match bigint[], p_if_exists boolean',
  'api_storage_policy_merge has the agreed parameters, none defaulted');
select is(
  (select pg_catalog.pg_get_function_arguments('botmox.api_storage_policy_replace(text, text, text, boolean, bigint[], boolean)'::regprocedure)),
  'p_claims text, p_tenant_id text, p_operational text, p_sync_enabled boolean, p_if_match bigint[], p_if_exists boolean',
  'api_storage_policy_replace has the agreed parameters, none defaulted');
select isnt_definer('botmox', 'api_storage_policy_read', array['text', 'text'],
  'api_storage_policy_read is SECURITY INVOKER: RLS applies as the caller');
select isnt_definer('botmox', 'api_storage_policy_replace', array['text', 'text', 'text', 'boolean', 'bigint[]', 'boolean'],
  'api_storage_policy_replace is SECURITY INVOKER');
select isnt_definer('botmox', 'api_storage_policy_merge', array['text', 'text', 'text', 'boolean', 'bigint[]', 'boolean'],
  'api_storage_policy_merge is SECURITY INVOKER');
select ok(not exists (
    select 1 from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'botmox' and p.proname like 'api\_%'
      and not coalesce(p.proconfig @> array['search_path=""'], false)),
  'every api_ function pins search_path to empty');

create temporary table api_calls (signature text primary key);
insert into api_calls values
  ('botmox.api_storage_policy_read(text, text)'),
  ('botmox.api_storage_policy_replace(text, text, text, boolean, bigint[], boolean)'),
  ('botmox.api_storage_policy_merge(text, text, text, boolean, bigint[], boolean)');
select is(
  (select count(*) from api_calls where has_function_privilege('botmox_api', signature, 'execute')),
  3::bigint, 'botmox_api may call the three api_ functions');
select is_empty(
  $$select role, signature from api_calls
    cross join unnest(array['public', 'anon', 'authenticated', 'service_role', 'botmox_policy_writer']) as roles(role)
    where has_function_privilege(role, signature, 'execute')$$,
  'no other role may call them: a role that declares its own claims is never one a user token reaches');
select is(
  (select count(*) from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'public' and p.proname like 'api\_%'),
  0::bigint, 'nothing of the kind in public, the schema PostgREST exposes');

set local role authenticated;
set local request.jwt.claims = '{"sub": "bob", "role": "authenticated", "app_metadata": {"tenant_id": "tenant-b"}}';
select throws_ok(
  $$select * from botmox.api_storage_policy_read('{"sub": "bob", "app_metadata": {"tenant_id": "tenant-a"}}', 'tenant-a')$$,
  '42501', 'permission denied for function api_storage_policy_read',
  'authenticated cannot read through api_storage_policy_read (it would choose its tenant)');
select throws_ok(
  $$select * from botmox.api_storage_policy_merge('{"sub": "bob", "app_metadata": {"tenant_id": "tenant-a"}}',
    'tenant-a', 'local', null, null, false)$$,
  '42501', 'permission denied for function api_storage_policy_merge', 'authenticated cannot merge through it');
select throws_ok(
  $$select * from botmox.api_storage_policy_replace('{"sub": "bob", "app_metadata": {"tenant_id": "tenant-a"}}',
    'tenant-a', 'local', null, null, false)$$,
  '42501', 'permission denied for function api_storage_policy_replace', 'authenticated cannot replace through it');
reset role;

set local role anon;
select throws_ok(
  $$select * from botmox.api_storage_policy_read('{"sub": "x", "app_metadata": {"tenant_id": "tenant-a"}}', 'tenant-a')$$,
  '42501', null, 'anon cannot call api_storage_policy_read');
reset role;

-- ---------------------------------------------------------------- behaviour, as botmox_api
create function pg_temp.tenant_a_row() returns text language sql as $$
  select format('%s/%s/%s/%s', operational, sync_enabled, version, updated_by)
  from public.storage_policies where tenant_id = 'tenant-a'
$$;
set local role botmox_api;
-- Claims already declared in the transaction do not matter: each call declares its own.
set local request.jwt.claims = '{"sub": "nobody", "app_metadata": {"tenant_id": "tenant-z"}}';

select is_empty(
  $$select * from botmox.api_storage_policy_read('{"sub": "alice", "app_metadata": {"tenant_id": "tenant-a"}}', 'tenant-a')$$,
  'read of nothing stored: no row');
select results_eq(
  $$select operational, sync_enabled, version, updated_by, secrets
    from botmox.api_storage_policy_replace('{"sub": "alice", "app_metadata": {"tenant_id": "tenant-a"}}',
      'tenant-a', 'local', true, null, false)$$,
  $$values ('local'::text, true, 1::bigint, 'alice'::text, 'local-only'::text)$$,
  'replace as tenant-a: the row, version 1, updated_by is the sub of the claims');
select is(botmox.request_tenant_id() || '/' || botmox.request_subject(), 'tenant-a/alice',
  'the call declared its claims (local to the transaction)');
select results_eq(
  $$select operational, sync_enabled, version, updated_by
    from botmox.api_storage_policy_read('{"sub": "alice", "app_metadata": {"tenant_id": "tenant-a"}}', 'tenant-a')$$,
  $$values ('local'::text, true, 1::bigint, 'alice'::text)$$,
  'read as tenant-a returns the stored row');
select results_eq(
  $$select operational, sync_enabled, version, updated_by
    from botmox.api_storage_policy_merge('{"sub": "anna", "app_metadata": {"tenant_id": "tenant-a"}}',
      'tenant-a', null, false, array[7, 1]::bigint[], false)$$,
  $$values ('local'::text, false, 2::bigint, 'anna'::text)$$,
  'merge keeps what is not given, bumps the version, records the new sub; If-Match listing the version writes');
select results_eq(
  $$select operational, sync_enabled, version
    from botmox.api_storage_policy_replace('{"sub": "anna", "app_metadata": {"tenant_id": "tenant-a"}}',
      'tenant-a', null, null, null, true)$$,
  $$values ('cloud'::text, false, 3::bigint)$$,
  'replace resets what is not given; If-Match: * on an existing row writes');

reset role;
select is(pg_temp.tenant_a_row(), 'cloud/f/3/anna', 'tenant-a as written through the api_ functions');
set local role botmox_api;

-- Row-level security still confines: claims of tenant b neither read nor write tenant a.
select is_empty(
  $$select * from botmox.api_storage_policy_read('{"sub": "bob", "app_metadata": {"tenant_id": "tenant-b"}}', 'tenant-a')$$,
  'claims of tenant-b: read of tenant-a returns nothing (RLS)');
select throws_ok(
  $$select * from botmox.api_storage_policy_merge('{"sub": "bob", "app_metadata": {"tenant_id": "tenant-b"}}',
    'tenant-a', 'local', null, null, false)$$,
  '42501', 'storage policy of another tenant', 'claims of tenant-b: merge into tenant-a is refused');
select throws_ok(
  $$select * from botmox.api_storage_policy_replace('{"sub": "bob", "app_metadata": {"tenant_id": "tenant-b"}}',
    'tenant-a', 'local', null, array[3]::bigint[], false)$$,
  '42501', 'storage policy of another tenant',
  'claims of tenant-b: replace of tenant-a with its real version is refused the same way');
select throws_ok(
  $$select * from botmox.api_storage_policy_merge('{"sub": "bob", "app_metadata": {"tenant_id": "tenant-b"}}',
    'tenant-none', null, null, null, true)$$,
  '42501', 'storage policy of another tenant',
  'claims of tenant-b: the refusal is the same for a tenant with nothing stored (nothing revealed)');
select results_eq(
  $$select tenant_id, version, updated_by
    from botmox.api_storage_policy_merge('{"sub": "bob", "app_metadata": {"tenant_id": "tenant-b"}}',
      'tenant-b', 'local', null, null, false)$$,
  $$values ('tenant-b'::text, 1::bigint, 'bob'::text)$$, 'claims of tenant-b write tenant-b');
select results_eq(
  $$select tenant_id from botmox.api_storage_policy_read('{"sub": "bob", "app_metadata": {"tenant_id": "tenant-b"}}', 'tenant-b')$$,
  $$values ('tenant-b'::text)$$, 'claims of tenant-b read tenant-b');
select is_empty(
  $$select * from public.storage_policies where tenant_id <> 'tenant-b'$$,
  'after a call with claims of tenant-b, the transaction sees no other tenant''s row');

-- No tenant, no sub, a tenant in user_metadata: fail closed, as through the public functions.
select is_empty($$select * from botmox.api_storage_policy_read('', 'tenant-a')$$, 'empty claims: read returns nothing');
select throws_ok(
  $$select * from botmox.api_storage_policy_merge('', 'tenant-a', 'local', null, null, false)$$,
  '42501', 'storage policy of another tenant', 'empty claims: no write');
select throws_ok(
  $$select * from botmox.api_storage_policy_merge('{"app_metadata": {"tenant_id": "tenant-a"}}',
    'tenant-a', 'local', null, null, false)$$,
  '42501', 'storage policy write without a caller', 'claims without a sub cannot write');
select is_empty(
  $$select * from botmox.api_storage_policy_read(
      '{"sub": "bob", "app_metadata": {"tenant_id": "tenant-b"}, "user_metadata": {"tenant_id": "tenant-a"}}', 'tenant-a')$$,
  'a tenant_id in user_metadata is ignored');

-- Preconditions: BM412 with the current version in DETAIL; nothing changes.
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
select throws_ok(
  $$select * from botmox.api_storage_policy_merge('{"sub": "anna", "app_metadata": {"tenant_id": "tenant-a"}}',
    'tenant-a', 'local', null, array[1, 2]::bigint[], false)$$,
  'BM412', 'storage policy version mismatch', 'merge with a stale version raises BM412');
select is(pg_temp.bm412_detail(
    $$select * from botmox.api_storage_policy_replace('{"sub": "anna", "app_metadata": {"tenant_id": "tenant-a"}}',
      'tenant-a', 'local', null, array[]::bigint[], false)$$),
  'current_version=3', 'BM412 DETAIL carries the current version (an empty If-Match list matches nothing)');
select is(pg_temp.bm412_detail(
    $$select * from botmox.api_storage_policy_merge('{"sub": "nina", "app_metadata": {"tenant_id": "tenant-n"}}',
      'tenant-n', null, null, null, true)$$),
  'current_version=none', 'BM412 DETAIL says none when nothing is stored (If-Match: *)');
select is(pg_temp.bm412_detail(
    $$select * from botmox.api_storage_policy_replace('{"sub": "nina", "app_metadata": {"tenant_id": "tenant-n"}}',
      'tenant-n', null, null, array[1]::bigint[], false)$$),
  'current_version=none', 'If-Match on a missing row: BM412, none');
select is_empty(
  $$select * from botmox.api_storage_policy_read('{"sub": "nina", "app_metadata": {"tenant_id": "tenant-n"}}', 'tenant-n')$$,
  'a failed precondition created nothing');
select throws_ok(
  $$select * from botmox.api_storage_policy_merge('{"sub": "anna", "app_metadata": {"tenant_id": "tenant-a"}}',
    'tenant-a', 'sideways', null, null, false)$$,
  '23514', null, 'an invalid operational is 23514, as through the public functions');
reset role;

select is(pg_temp.tenant_a_row(), 'cloud/f/3/anna', 'tenant-a unchanged by the refused and failed calls');
select is(
  (select count(*) from public.storage_policies),
  2::bigint, 'exactly tenant-a and tenant-b were written');
select ok(not pg_catalog.pg_has_role('botmox_api', 'botmox_policy_writer', 'member'),
  'botmox_api is still no member of the write body''s definer');

select * from finish();
rollback;
