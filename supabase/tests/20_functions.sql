-- storage_policy_read / replace / merge: documented results, version bump, updated_by, BM412.
-- Each write acts for the tenant and author of request.jwt.claims, declared here as the API does.
begin;
select plan(35);

set local request.jwt.claims = '{"sub": "u1", "app_metadata": {"tenant_id": "acme"}}';

-- Nothing stored yet.
select is((select count(*) from public.storage_policy_read('acme')), 0::bigint, 'read of nothing stored: no row');

-- Preconditions on a missing row: If-Match and If-Match: * never match; nothing is created.
select throws_ok(
  $$select public.storage_policy_merge('acme', 'u1', 'local', p_if_match => array[1]::bigint[])$$,
  'BM412', 'storage policy version mismatch', 'If-Match on a missing row raises BM412');
select throws_ok(
  $$select public.storage_policy_replace('acme', 'u1', 'local', p_if_exists => true)$$,
  'BM412', 'storage policy version mismatch', 'If-Match: * on a missing row raises BM412');
select is((select count(*) from public.storage_policies where tenant_id = 'acme'), 0::bigint,
  'a failed precondition created nothing');

-- Merge with nothing stored: given fields over the defaults.
select results_eq(
  $$select secrets, operational, sync_enabled, version, updated_by
    from public.storage_policy_merge('acme', 'u1', p_sync_enabled => true)$$,
  $$values ('local-only'::text, 'cloud'::text, true, 1::bigint, 'u1'::text)$$,
  'merge with nothing stored: defaults plus the given field, version 1');
select ok((select updated_at_ms between (extract(epoch from now()) * 1000)::bigint - 60000
                                  and (extract(epoch from clock_timestamp()) * 1000)::bigint + 1000
           from public.storage_policies where tenant_id = 'acme'),
  'updated_at_ms is the epoch in milliseconds');

-- Merge keeps what is not given.
set local request.jwt.claims = '{"sub": "u2", "app_metadata": {"tenant_id": "acme"}}';
select results_eq(
  $$select operational, sync_enabled, version, updated_by
    from public.storage_policy_merge('acme', 'u2', p_operational => 'local')$$,
  $$values ('local'::text, true, 2::bigint, 'u2'::text)$$,
  'merge keeps sync_enabled, sets operational, bumps to version 2, records updated_by');

-- Replace resets what is not given to the defaults.
set local request.jwt.claims = '{"sub": "u3", "app_metadata": {"tenant_id": "acme"}}';
select results_eq(
  $$select operational, sync_enabled, version, updated_by
    from public.storage_policy_replace('acme', 'u3', p_operational => 'local')$$,
  $$values ('local'::text, false, 3::bigint, 'u3'::text)$$,
  'replace sets operational, resets sync_enabled to false, version 3');
set local request.jwt.claims = '{"sub": "u5", "app_metadata": {"tenant_id": "acme"}}';
select results_eq(
  $$select operational, sync_enabled, version from public.storage_policy_replace('acme', 'u4')$$,
  $$values ('cloud'::text, false, 4::bigint)$$,
  'replace with no fields gives the defaults, version 4');
select results_eq(
  $$select operational, sync_enabled, version from public.storage_policy_merge('acme', 'u5')$$,
  $$values ('cloud'::text, false, 5::bigint)$$,
  'merge with no fields changes no field but still bumps the version');

-- Replace with nothing stored: given fields over the defaults, version 1.
set local request.jwt.claims = '{"sub": "z1", "app_metadata": {"tenant_id": "zeta"}}';
select results_eq(
  $$select operational, sync_enabled, version, updated_by
    from public.storage_policy_replace('zeta', 'z1', p_sync_enabled => true)$$,
  $$values ('cloud'::text, true, 1::bigint, 'z1'::text)$$,
  'replace with nothing stored: defaults plus the given field, version 1');

-- Read returns the stored row.
set local request.jwt.claims = '{"sub": "reader", "app_metadata": {"tenant_id": "acme"}}';
select results_eq(
  $$select tenant_id, secrets, operational, sync_enabled, version, updated_by
    from public.storage_policy_read('acme')$$,
  $$values ('acme'::text, 'local-only'::text, 'cloud'::text, false, 5::bigint, 'u5'::text)$$,
  'read returns the one stored row');

-- Stale expected version: BM412 with the current version in DETAIL, and nothing changes.
create temporary table before_stale as select * from public.storage_policies where tenant_id = 'acme';
select throws_ok(
  $$select public.storage_policy_merge('acme', 'mallory', 'local', p_if_match => array[3, 4]::bigint[])$$,
  'BM412', 'storage policy version mismatch', 'merge with a stale version raises BM412');
select throws_ok(
  $$select public.storage_policy_replace('acme', 'mallory', 'local', p_if_match => array[]::bigint[])$$,
  'BM412', 'storage policy version mismatch', 'an empty If-Match list matches nothing');
select results_eq(
  $$select * from public.storage_policies where tenant_id = 'acme'$$,
  $$select * from before_stale$$,
  'the stale writes changed nothing (same version, fields, updated_by, timestamps)');

-- The DETAIL names the current version.
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
select is(pg_temp.bm412_detail($$select public.storage_policy_merge('acme', 'm', p_if_match => array[1]::bigint[])$$),
  'current_version=5', 'BM412 DETAIL carries the current version');
set local request.jwt.claims = '{"sub": "m", "app_metadata": {"tenant_id": "none-here"}}';
select is(pg_temp.bm412_detail($$select public.storage_policy_merge('none-here', 'm', p_if_exists => true)$$),
  'current_version=none', 'BM412 DETAIL says none when nothing is stored');
set local request.jwt.claims = '{"sub": "u6", "app_metadata": {"tenant_id": "acme"}}';

-- Matching preconditions write.
select results_eq(
  $$select operational, version from public.storage_policy_merge('acme', 'u6', 'local', p_if_match => array[9, 5]::bigint[])$$,
  $$values ('local'::text, 6::bigint)$$,
  'If-Match listing the current version writes');
select results_eq(
  $$select sync_enabled, version from public.storage_policy_replace('acme', 'u7', p_sync_enabled => true, p_if_exists => true)$$,
  $$values (true, 7::bigint)$$,
  'If-Match: * on an existing row writes');
select results_eq(
  $$select operational, sync_enabled from public.storage_policies where tenant_id = 'acme'$$,
  $$values ('cloud'::text, true)$$,
  'replace under If-Match: * still resets the fields not given');

-- Bookkeeping: created_at is kept, updated_at and updated_at_ms move, version counts writes.
create temporary table before_touch as select * from public.storage_policies where tenant_id = 'acme';
do $$ begin perform pg_catalog.pg_sleep(0.01); end $$;
select lives_ok($$select public.storage_policy_merge('acme', 'u8')$$, 'an unconditioned merge writes');
select is((select created_at from public.storage_policies where tenant_id = 'acme'),
  (select created_at from before_touch), 'created_at is kept by updates');
select cmp_ok((select updated_at from public.storage_policies where tenant_id = 'acme'), '>',
  (select updated_at from before_touch), 'updated_at moves forward');
select cmp_ok((select updated_at_ms from public.storage_policies where tenant_id = 'acme'), '>',
  (select updated_at_ms from before_touch), 'updated_at_ms moves forward');
select is((select updated_at_ms from public.storage_policies where tenant_id = 'acme'),
  (select floor(extract(epoch from updated_at) * 1000)::bigint from public.storage_policies where tenant_id = 'acme'),
  'updated_at_ms and updated_at are the same instant');

-- The trigger owns version and timestamps even for direct writes (PostgREST table access).
update public.storage_policies set version = 1000, operational = 'local' where tenant_id = 'acme';
select is((select version from public.storage_policies where tenant_id = 'acme'), 9::bigint,
  'a direct update cannot forge the version: it becomes previous + 1');
insert into public.storage_policies (tenant_id, updated_by, version) values ('direct', 'd', 42);
select is((select version from public.storage_policies where tenant_id = 'direct'), 1::bigint,
  'a direct insert starts at version 1');

-- The author is the claims' subject: a p_updated_by cannot forge it, and no subject, no write.
select results_eq($$select updated_by from public.storage_policy_merge('acme', 'forged-author')$$,
  $$values ('u6'::text)$$, 'updated_by is the sub of the claims, not p_updated_by');
select results_eq($$select updated_by, version from public.storage_policy_merge('acme')$$,
  $$values ('u6'::text, 11::bigint)$$, 'p_updated_by may be left out');
set local request.jwt.claims = '{"app_metadata": {"tenant_id": "acme"}}';
select throws_ok($$select public.storage_policy_merge('acme', 'u6')$$, '42501',
  'storage policy write without a caller', 'claims without a sub cannot write');

-- The exact interface agreed with the API.
select function_returns('public', 'storage_policy_read', array['text'], 'setof storage_policies',
  'storage_policy_read returns setof storage_policies');
select function_returns('public', 'storage_policy_replace',
  array['text', 'text', 'text', 'boolean', 'bigint[]', 'boolean'], 'setof storage_policies',
  'storage_policy_replace returns setof storage_policies');
select function_returns('public', 'storage_policy_merge',
  array['text', 'text', 'text', 'boolean', 'bigint[]', 'boolean'], 'setof storage_policies',
  'storage_policy_merge returns setof storage_policies');
select is(
  (select pg_catalog.pg_get_function_arguments('public.storage_policy_merge(text, text, text, boolean, bigint[], boolean)'::regprocedure)),
  'p_tenant_id text, p_updated_by text DEFAULT NULL::text, p_operational text DEFAULT NULL::text, p_sync_enabled boolean DEFAULT NULL::boolean, p_if_match bigint[] DEFAULT NULL::bigint[], p_if_exists boolean DEFAULT false',
  'storage_policy_merge has the agreed parameter names and defaults');
select is(
  (select pg_catalog.pg_get_function_arguments('public.storage_policy_replace(text, text, text, boolean, bigint[], boolean)'::regprocedure)),
  'p_tenant_id text, p_updated_by text DEFAULT NULL::text, p_operational text DEFAULT NULL::text, p_sync_enabled boolean DEFAULT NULL::boolean, p_if_match bigint[] DEFAULT NULL::bigint[], p_if_exists boolean DEFAULT false',
  'storage_policy_replace has the agreed parameter names and defaults');

select * from finish();
rollback;
