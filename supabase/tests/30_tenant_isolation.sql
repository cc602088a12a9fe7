-- Row-level security: a request sees and writes only the tenant it declares, as `authenticated`
-- (PostgREST with a user's JWT) and as `botmox_api` (the API's direct connection).
begin;
select plan(35);

-- Seed as the superuser (bypasses RLS): tenant a has a policy.
select lives_ok($$select public.storage_policy_replace('tenant-a', 'alice', 'local', true)$$, 'seed tenant-a');

create function pg_temp.tenant_a_row() returns text language sql as $$
  select format('%s/%s/%s/%s', operational, sync_enabled, version, updated_by)
  from public.storage_policies where tenant_id = 'tenant-a'
$$;
select is(pg_temp.tenant_a_row(), 'local/t/1/alice', 'tenant-a as seeded');

-- ---------------------------------------------------------------- authenticated, tenant b
set local role authenticated;
set local request.jwt.claims = '{"sub": "bob", "role": "authenticated", "app_metadata": {"tenant_id": "tenant-b"}}';

select is(botmox.request_tenant_id(), 'tenant-b', 'authenticated: the declared tenant is read from the JWT claims');
select is_empty($$select * from public.storage_policy_read('tenant-a')$$,
  'authenticated b: storage_policy_read(a) returns nothing');
select is_empty($$select * from public.storage_policies$$, 'authenticated b: the table shows no row of a');
select throws_ok($$select public.storage_policy_merge('tenant-a', 'bob', 'cloud')$$, '42501',
  'new row violates row-level security policy for table "storage_policies"',
  'authenticated b: merge into a is refused');
select throws_ok($$select public.storage_policy_replace('tenant-a', 'bob')$$, '42501',
  'new row violates row-level security policy for table "storage_policies"',
  'authenticated b: replace of a is refused');
select throws_ok($$select public.storage_policy_merge('tenant-a', 'bob', p_if_exists => true)$$, 'BM412',
  'storage policy version mismatch',
  'authenticated b: a conditional write to a sees no row of a (BM412, nothing revealed)');
select throws_ok($$insert into public.storage_policies (tenant_id, updated_by) values ('tenant-a', 'bob')$$, '42501',
  'new row violates row-level security policy for table "storage_policies"',
  'authenticated b: a direct insert for a is refused');
select throws_ok($$insert into public.storage_policies (tenant_id, updated_by) values ('tenant-c', 'bob')$$, '42501',
  'new row violates row-level security policy for table "storage_policies"',
  'authenticated b: a direct insert for any other tenant is refused');
update public.storage_policies set operational = 'cloud' where tenant_id = 'tenant-a';
select throws_ok($$delete from public.storage_policies$$, '42501', 'permission denied for table storage_policies',
  'authenticated: no delete at all');

-- Its own tenant works.
select results_eq($$select operational, version from public.storage_policy_merge('tenant-b', 'bob', 'local')$$,
  $$values ('local'::text, 1::bigint)$$, 'authenticated b: writes its own tenant');
select results_eq($$select tenant_id from public.storage_policies$$, $$values ('tenant-b'::text)$$,
  'authenticated b: sees exactly its own row');
select throws_ok($$update public.storage_policies set tenant_id = 'tenant-a' where tenant_id = 'tenant-b'$$, '42501',
  'new row violates row-level security policy for table "storage_policies"',
  'authenticated b: cannot move its row to another tenant');
reset role;

select is(pg_temp.tenant_a_row(), 'local/t/1/alice', 'tenant-a unchanged after authenticated b');

-- ---------------------------------------------------------------- botmox_api, tenant c
set local role botmox_api;
select ok(set_config('request.jwt.claims', '{"app_metadata": {"tenant_id": "tenant-c"}}', true) is not null, 'botmox_api declares tenant-c for this transaction');

select is_empty($$select * from public.storage_policy_read('tenant-a')$$,
  'botmox_api c: storage_policy_read(a) returns nothing');
select is_empty($$select * from public.storage_policies where tenant_id <> 'tenant-c'$$,
  'botmox_api c: no other tenant''s row is visible');
select throws_ok($$select public.storage_policy_merge('tenant-a', 'carol', 'cloud')$$, '42501',
  'new row violates row-level security policy for table "storage_policies"',
  'botmox_api c: merge into a is refused');
select throws_ok($$select public.storage_policy_replace('tenant-a', 'carol', p_if_match => array[1]::bigint[])$$,
  'BM412', 'storage policy version mismatch',
  'botmox_api c: If-Match with a''s real version does not match (a is invisible)');
select throws_ok($$insert into public.storage_policies (tenant_id, updated_by) values ('tenant-a', 'carol')$$, '42501',
  'new row violates row-level security policy for table "storage_policies"',
  'botmox_api c: a direct insert for a is refused');
update public.storage_policies set sync_enabled = false where tenant_id = 'tenant-a';
select throws_ok($$delete from public.storage_policies where tenant_id = 'tenant-a'$$, '42501',
  'permission denied for table storage_policies', 'botmox_api: no delete at all');
select results_eq($$select operational, sync_enabled, version, updated_by
                    from public.storage_policy_replace('tenant-c', 'carol', p_sync_enabled => true)$$,
  $$values ('cloud'::text, true, 1::bigint, 'carol'::text)$$, 'botmox_api c: writes its own tenant');

-- A transaction that declares nothing sees nothing and writes nothing (fail closed).
select ok(set_config('request.jwt.claims', '', true) is not null, 'the declaration is cleared');
select is(botmox.request_tenant_id(), null, 'botmox_api: no declaration, no tenant');
select is_empty($$select * from public.storage_policies$$, 'botmox_api without a tenant sees no row');
select throws_ok($$select public.storage_policy_merge('tenant-c', 'carol', 'local')$$, '42501',
  'new row violates row-level security policy for table "storage_policies"',
  'botmox_api without a tenant cannot write');
select ok(set_config('request.jwt.claims', '{"app_metadata": {}}', true) is not null, 'claims without app_metadata.tenant_id');
select is_empty($$select * from public.storage_policies$$, 'botmox_api with claims but no tenant_id sees no row');
-- A tenant id in the wrong claim (user_metadata is user-editable on Supabase) is not honoured.
select ok(set_config('request.jwt.claims', '{"user_metadata": {"tenant_id": "tenant-a"}}', true) is not null, 'claims with tenant_id in user_metadata only');
select is_empty($$select * from public.storage_policy_read('tenant-a')$$,
  'botmox_api: a tenant_id in user_metadata is ignored');
reset role;

select is(pg_temp.tenant_a_row(), 'local/t/1/alice', 'tenant-a unchanged after botmox_api c');

-- ---------------------------------------------------------------- anon and service_role
set local role anon;
select throws_ok($$select * from public.storage_policy_read('tenant-a')$$, '42501',
  'permission denied for function storage_policy_read', 'anon cannot call the functions');
reset role;

set local role service_role;
select results_eq($$select count(*) from public.storage_policies$$, $$values (3::bigint)$$,
  'service_role (BYPASSRLS, the REST transport''s key) sees every tenant');
select results_eq($$select version from public.storage_policy_merge('tenant-a', 'svc', 'cloud')$$,
  $$values (2::bigint)$$, 'service_role writes any tenant through the functions');
reset role;

select * from finish();
rollback;
