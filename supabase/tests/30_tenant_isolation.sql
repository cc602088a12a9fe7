-- Row-level security and the caller's identity: a request sees only the tenant it declares, writes
-- only through the functions, only that tenant, and is recorded as the author it declares (the JWT
-- sub), as `authenticated` (PostgREST with a JWT) and as `botmox_api` (the API's direct connection).
begin;
select plan(45);

-- Seed tenant a as the superuser, declaring tenant a and its author like any caller must.
set local request.jwt.claims = '{"sub": "alice", "app_metadata": {"tenant_id": "tenant-a"}}';
select lives_ok($$select public.storage_policy_replace('tenant-a', 'ignored', 'local', true)$$, 'seed tenant-a');

create function pg_temp.tenant_a_row() returns text language sql as $$
  select format('%s/%s/%s/%s', operational, sync_enabled, version, updated_by)
  from public.storage_policies where tenant_id = 'tenant-a'
$$;
select is(pg_temp.tenant_a_row(), 'local/t/1/alice', 'tenant-a as seeded, written by the declared sub');

-- ---------------------------------------------------------------- authenticated, tenant b
set local role authenticated;
set local request.jwt.claims = '{"sub": "bob", "role": "authenticated", "app_metadata": {"tenant_id": "tenant-b"}}';

select is(botmox.request_tenant_id(), 'tenant-b', 'authenticated: the declared tenant is read from the JWT claims');
select is(botmox.request_subject(), 'bob', 'authenticated: the caller is the JWT sub');
select is_empty($$select * from public.storage_policy_read('tenant-a')$$,
  'authenticated b: storage_policy_read(a) returns nothing');
select is_empty($$select * from public.storage_policies$$, 'authenticated b: the table shows no row of a');
select throws_ok($$select public.storage_policy_merge('tenant-a', 'bob', 'cloud')$$, '42501',
  'storage policy of another tenant', 'authenticated b: merge into a is refused');
select throws_ok($$select public.storage_policy_replace('tenant-a', 'bob')$$, '42501',
  'storage policy of another tenant', 'authenticated b: replace of a is refused');
select throws_ok($$select public.storage_policy_merge('tenant-a', 'bob', p_if_exists => true)$$, '42501',
  'storage policy of another tenant', 'authenticated b: a conditional write to a is refused the same way');
select throws_ok($$select public.storage_policy_merge('tenant-z', 'bob', p_if_exists => true)$$, '42501',
  'storage policy of another tenant',
  'authenticated b: the refusal is the same for a tenant with nothing stored (nothing revealed)');

-- No direct writes at all, not even to its own tenant: writes go through the functions.
select throws_ok($$insert into public.storage_policies (tenant_id, updated_by) values ('tenant-a', 'bob')$$, '42501',
  'permission denied for table storage_policies', 'authenticated b: a direct insert for a is refused');
select throws_ok($$insert into public.storage_policies (tenant_id, updated_by) values ('tenant-b', 'bob')$$, '42501',
  'permission denied for table storage_policies', 'authenticated b: a direct insert for its own tenant is refused');
select throws_ok($$update public.storage_policies set operational = 'cloud' where tenant_id = 'tenant-a'$$, '42501',
  'permission denied for table storage_policies', 'authenticated b: a direct update is refused');
select throws_ok($$delete from public.storage_policies$$, '42501', 'permission denied for table storage_policies',
  'authenticated: no delete at all');

-- Its own tenant works through the functions, and the author is the JWT sub whatever is passed.
select results_eq(
  $$select operational, version, updated_by from public.storage_policy_merge('tenant-b', 'mallory', 'local')$$,
  $$values ('local'::text, 1::bigint, 'bob'::text)$$,
  'authenticated b: writes its own tenant; updated_by is the sub, not p_updated_by');
select results_eq($$select updated_by, version from public.storage_policy_replace('tenant-b')$$,
  $$values ('bob'::text, 2::bigint)$$, 'authenticated b: p_updated_by may be left out');
select results_eq($$select tenant_id from public.storage_policies$$, $$values ('tenant-b'::text)$$,
  'authenticated b: reads exactly its own row');
select results_eq($$select tenant_id, version from public.storage_policy_read('tenant-b')$$,
  $$values ('tenant-b'::text, 2::bigint)$$, 'authenticated b: storage_policy_read of its own tenant');
select throws_ok($$update public.storage_policies set tenant_id = 'tenant-a' where tenant_id = 'tenant-b'$$, '42501',
  'permission denied for table storage_policies', 'authenticated b: cannot move its row to another tenant');
select throws_ok($$select botmox.storage_policy_write(true, 'tenant-a', 'cloud', null, null, false)$$, '42501',
  'storage policy of another tenant', 'authenticated b: the private write body refuses another tenant too');

set local request.jwt.claims = '{"role": "authenticated", "app_metadata": {"tenant_id": "tenant-b"}}';
select throws_ok($$select public.storage_policy_merge('tenant-b', 'bob', 'cloud')$$, '42501',
  'storage policy write without a caller', 'authenticated: claims without a sub cannot write');
reset role;

select is(pg_temp.tenant_a_row(), 'local/t/1/alice', 'tenant-a unchanged after authenticated b');

-- ---------------------------------------------------------------- botmox_api, tenant c
set local role botmox_api;
-- The declaration exactly as the API's SQL transport makes it.
do $$ begin
  perform set_config('request.jwt.claims',
    json_build_object('sub', 'carol', 'app_metadata', json_build_object('tenant_id', 'tenant-c'))::text, true);
end $$;
select is(botmox.request_tenant_id() || '/' || botmox.request_subject(), 'tenant-c/carol',
  'botmox_api: the transaction declares tenant-c and caller carol');

select is_empty($$select * from public.storage_policy_read('tenant-a')$$,
  'botmox_api c: storage_policy_read(a) returns nothing');
select is_empty($$select * from public.storage_policies where tenant_id <> 'tenant-c'$$,
  'botmox_api c: no other tenant''s row is visible');
select throws_ok($$select public.storage_policy_merge('tenant-a', 'carol', 'cloud')$$, '42501',
  'storage policy of another tenant', 'botmox_api c: merge into a is refused');
select throws_ok($$select public.storage_policy_replace('tenant-a', 'carol', p_if_match => array[1]::bigint[])$$,
  '42501', 'storage policy of another tenant', 'botmox_api c: If-Match with a''s real version is refused');
select throws_ok($$insert into public.storage_policies (tenant_id, updated_by) values ('tenant-c', 'carol')$$, '42501',
  'permission denied for table storage_policies', 'botmox_api c: no direct insert, even for its own tenant');
select throws_ok($$update public.storage_policies set sync_enabled = false where tenant_id = 'tenant-c'$$, '42501',
  'permission denied for table storage_policies', 'botmox_api c: no direct update');
select throws_ok($$delete from public.storage_policies where tenant_id = 'tenant-a'$$, '42501',
  'permission denied for table storage_policies', 'botmox_api: no delete at all');
select results_eq($$select operational, sync_enabled, version, updated_by
                    from public.storage_policy_replace('tenant-c', 'mallory', p_sync_enabled => true)$$,
  $$values ('cloud'::text, true, 1::bigint, 'carol'::text)$$,
  'botmox_api c: writes its own tenant; updated_by is the declared sub, not p_updated_by');

-- A transaction that declares nothing sees nothing and writes nothing (fail closed).
do $$ begin perform set_config('request.jwt.claims', '', true); end $$;
select is(botmox.request_tenant_id(), null, 'botmox_api: a cleared declaration leaves no tenant');
select is_empty($$select * from public.storage_policies$$, 'botmox_api without a tenant sees no row');
select throws_ok($$select public.storage_policy_merge('tenant-c', 'carol', 'local')$$, '42501',
  'storage policy of another tenant', 'botmox_api without a tenant cannot write');

do $$ begin perform set_config('request.jwt.claims', '{"sub": "carol", "app_metadata": {}}', true); end $$;
select is(coalesce(botmox.request_tenant_id(), '<none>') || '/' || botmox.request_subject(), '<none>/carol',
  'botmox_api: claims with a sub but no app_metadata.tenant_id declare no tenant');
select is_empty($$select * from public.storage_policies$$, 'botmox_api with claims but no tenant_id sees no row');

-- A tenant id in user_metadata (user-editable on Supabase) is not honoured; app_metadata decides.
do $$ begin
  perform set_config('request.jwt.claims',
    '{"sub": "carol", "app_metadata": {"tenant_id": "tenant-c"}, "user_metadata": {"tenant_id": "tenant-a"}}', true);
end $$;
select is(botmox.request_tenant_id(), 'tenant-c', 'botmox_api: app_metadata.tenant_id wins over user_metadata');
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
set local request.jwt.claims = '{"sub": "svc", "role": "service_role", "app_metadata": {"tenant_id": "tenant-a"}}';
select results_eq($$select count(*) from public.storage_policies$$, $$values (3::bigint)$$,
  'service_role (BYPASSRLS) sees every tenant');
select results_eq($$select version, updated_by from public.storage_policy_merge('tenant-a', 'x', 'cloud')$$,
  $$values (2::bigint, 'svc'::text)$$, 'service_role writes through the functions as the tenant it declares');
select throws_ok($$select public.storage_policy_merge('tenant-b', 'svc', 'cloud')$$, '42501',
  'storage policy of another tenant', 'the functions keep even service_role to the declared tenant');
reset role;

-- ---------------------------------------------------------------- the definer cannot be borrowed
select ok(not pg_catalog.pg_has_role('authenticated', 'botmox_policy_writer', 'member')
          and not pg_catalog.pg_has_role('botmox_api', 'botmox_policy_writer', 'member'),
  'neither caller role is a member of botmox_policy_writer');
select is(pg_temp.tenant_a_row(), 'cloud/t/2/svc', 'tenant-a as service_role wrote it');

select * from finish();
rollback;
