-- The claims an api_ function declares end with its statement. No BEGIN here on purpose: every
-- statement below is its own transaction, as each of the API's calls is, and the statement after a
-- call, on the same connection, must see no claims (so a pooled connection carries none over).
select plan(8);

set role botmox_api;

select results_eq(
  $$select tenant_id, version, updated_by
    from botmox.api_storage_policy_replace('{"sub": "dora", "app_metadata": {"tenant_id": "scope-d"}}',
      'scope-d', 'local', null, null, false)$$,
  $$values ('scope-d'::text, 1::bigint, 'dora'::text)$$,
  'a write, in a statement of its own');
select is(nullif(current_setting('request.jwt.claims', true), ''), null,
  'the next statement on the connection sees no claims');
select is(botmox.request_tenant_id(), null, '... hence no tenant');
select is_empty($$select * from public.storage_policies$$, '... and no row (row-level security, fail closed)');

select results_eq(
  $$select tenant_id, version
    from botmox.api_storage_policy_read('{"sub": "dora", "app_metadata": {"tenant_id": "scope-d"}}', 'scope-d')$$,
  $$values ('scope-d'::text, 1::bigint)$$,
  'a read, in a statement of its own');
select is(nullif(current_setting('request.jwt.claims', true), ''), null, 'no claims after a read either');

select throws_ok(
  $$select * from botmox.api_storage_policy_merge('{"sub": "dora", "app_metadata": {"tenant_id": "scope-d"}}',
    'scope-d', null, null, array[9]::bigint[], false)$$,
  'BM412', 'storage policy version mismatch', 'a failed write, in a statement of its own');
select is(nullif(current_setting('request.jwt.claims', true), ''), null, 'no claims after a failed write');

reset role;
-- Committed above (no transaction to roll back): leave the database as the other files expect it.
delete from public.storage_policies where tenant_id = 'scope-d';

select * from finish();
