-- Named check constraints reject what the contract forbids, whoever writes.
begin;
select plan(11);

select throws_ok(
  $$insert into public.storage_policies (tenant_id, secrets, updated_by) values ('t1', 'cloud', 'u')$$,
  '23514',
  'new row for relation "storage_policies" violates check constraint "storage_policies_secrets_check"',
  'secrets = cloud is rejected by storage_policies_secrets_check'
);
select throws_ok(
  $$insert into public.storage_policies (tenant_id, operational, updated_by) values ('t1', 'x', 'u')$$,
  '23514',
  'new row for relation "storage_policies" violates check constraint "storage_policies_operational_check"',
  'operational = x is rejected by storage_policies_operational_check'
);
select throws_ok(
  $$insert into public.storage_policies (tenant_id, updated_by) values ('Bad Tenant', 'u')$$,
  '23514',
  'new row for relation "storage_policies" violates check constraint "storage_policies_tenant_id_check"',
  'a tenant id outside ^[a-z0-9][a-z0-9_-]{0,62}$ is rejected by storage_policies_tenant_id_check'
);
select throws_ok(
  format($$insert into public.storage_policies (tenant_id, updated_by) values (%L, 'u')$$, repeat('a', 64)),
  '23514',
  'new row for relation "storage_policies" violates check constraint "storage_policies_tenant_id_check"',
  'a 64-character tenant id is rejected'
);
select throws_ok(
  $$insert into public.storage_policies (tenant_id, updated_by) values (E'abc\n', 'u')$$,
  '23514',
  'new row for relation "storage_policies" violates check constraint "storage_policies_tenant_id_check"',
  'a trailing newline does not slip past the anchored pattern'
);
select throws_ok(
  $$insert into public.storage_policies (tenant_id, updated_by) values ('-abc', 'u')$$,
  '23514',
  'new row for relation "storage_policies" violates check constraint "storage_policies_tenant_id_check"',
  'a tenant id must start with a letter or digit'
);
select lives_ok(
  format($$insert into public.storage_policies (tenant_id, updated_by) values (%L, 'u')$$, repeat('a', 63)),
  'a 63-character tenant id is accepted'
);

insert into public.storage_policies (tenant_id, updated_by) values ('t1', 'u');
select throws_ok(
  $$update public.storage_policies set secrets = 'cloud' where tenant_id = 't1'$$,
  '23514',
  'new row for relation "storage_policies" violates check constraint "storage_policies_secrets_check"',
  'an update to secrets = cloud is rejected by the named constraint'
);
set local request.jwt.claims = '{"sub": "u", "app_metadata": {"tenant_id": "t1"}}';
select throws_ok(
  $$select public.storage_policy_merge('t1', 'u', p_operational => 'x')$$,
  '23514',
  'new row for relation "storage_policies" violates check constraint "storage_policies_operational_check"',
  'storage_policy_merge with operational = x is rejected by the named constraint'
);
set local request.jwt.claims = '{"sub": "u", "app_metadata": {"tenant_id": "t2"}}';
select throws_ok(
  $$select public.storage_policy_replace('t2', 'u', p_operational => 'x')$$,
  '23514',
  'new row for relation "storage_policies" violates check constraint "storage_policies_operational_check"',
  'storage_policy_replace of a new row with operational = x is rejected by the named constraint'
);
select is((select count(*) from public.storage_policies where tenant_id = 't2'), 0::bigint,
  'the rejected insert left nothing behind');

select * from finish();
rollback;
