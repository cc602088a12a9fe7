-- Shape of the schema: table, named constraints, RLS, roles, function attributes and grants.
begin;
select plan(45);

select has_table('public', 'storage_policies', 'public.storage_policies exists');
select col_is_pk('public', 'storage_policies', 'tenant_id', 'tenant_id is the primary key');
select col_type_is('public', 'storage_policies', 'updated_at_ms', 'bigint', 'updated_at_ms is bigint');
select col_type_is('public', 'storage_policies', 'version', 'bigint', 'version is bigint');
select col_type_is('public', 'storage_policies', 'created_at', 'timestamp with time zone', 'created_at is timestamptz');
select col_type_is('public', 'storage_policies', 'updated_at', 'timestamp with time zone', 'updated_at is timestamptz');
select col_default_is('public', 'storage_policies', 'operational', 'cloud', 'operational defaults to cloud');
select col_default_is('public', 'storage_policies', 'sync_enabled', 'false', 'sync_enabled defaults to false');
select col_default_is('public', 'storage_policies', 'secrets', 'local-only', 'secrets defaults to local-only');
select has_check('public', 'storage_policies', 'storage_policies has check constraints');
select bag_eq(
  $$select conname::text from pg_catalog.pg_constraint
    where conrelid = 'public.storage_policies'::regclass and contype = 'c'$$,
  array['storage_policies_tenant_id_check', 'storage_policies_secrets_check',
        'storage_policies_operational_check', 'storage_policies_version_check'],
  'the check constraints carry their documented names'
);
select has_trigger('public', 'storage_policies', 'storage_policies_bookkeeping', 'bookkeeping trigger exists');

select ok((select relrowsecurity from pg_catalog.pg_class where oid = 'public.storage_policies'::regclass),
  'row-level security is enabled');
select ok((select relforcerowsecurity from pg_catalog.pg_class where oid = 'public.storage_policies'::regclass),
  'row-level security is forced on the owner too');
select ok(not exists (
    select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'botmox') and c.relkind in ('r', 'p') and not c.relrowsecurity),
  'every table in public and botmox has row-level security');
select policies_are('public', 'storage_policies',
  array['storage_policies_tenant_select', 'storage_policies_tenant_insert', 'storage_policies_tenant_update',
        'storage_policies_copier_select', 'storage_policies_copier_insert', 'storage_policies_copier_update'],
  'exactly the tenant policies and the administrator''s copy path''s (50_backfill.sql)');
select policy_roles_are('public', 'storage_policies', 'storage_policies_tenant_select',
  array['authenticated', 'botmox_api', 'botmox_policy_writer'],
  'select policy applies to the callers and to the definer of the write body');
select policy_roles_are('public', 'storage_policies', 'storage_policies_tenant_insert',
  array['botmox_policy_writer'], 'insert policy applies to the definer of the write body only');
select policy_roles_are('public', 'storage_policies', 'storage_policies_tenant_update',
  array['botmox_policy_writer'], 'update policy applies to the definer of the write body only');

select has_role('anon', 'anon exists');
select has_role('authenticated', 'authenticated exists');
select has_role('service_role', 'service_role exists');
select ok((select not rolcanlogin and not rolsuper and not rolbypassrls and not rolcreaterole and not rolcreatedb
           from pg_catalog.pg_roles where rolname = 'botmox_policy_writer'),
  'botmox_policy_writer cannot log in, is no superuser and cannot bypass RLS');
select ok((select rolbypassrls and not rolcanlogin from pg_catalog.pg_roles where rolname = 'service_role'),
  'service_role bypasses RLS like on Supabase and cannot log in');
select ok((select rolcanlogin and not rolsuper and not rolbypassrls and not rolcreaterole and not rolcreatedb
           from pg_catalog.pg_roles where rolname = 'botmox_api'),
  'botmox_api logs in, is no superuser and cannot bypass RLS');

select is(
  (select array_agg(privilege_type::text order by privilege_type)
   from information_schema.role_table_grants
   where grantee = 'botmox_api' and table_schema = 'public' and table_name = 'storage_policies'),
  array['SELECT'],
  'botmox_api holds only select on the table: it writes through the functions'
);
select is(
  (select array_agg(privilege_type::text order by privilege_type)
   from information_schema.role_table_grants
   where grantee = 'authenticated' and table_schema = 'public' and table_name = 'storage_policies'),
  array['SELECT'],
  'authenticated holds only select on the table (not Supabase''s default ALL): it writes through the functions'
);
select is(
  (select array_agg(privilege_type::text order by privilege_type)
   from information_schema.role_table_grants
   where grantee = 'botmox_policy_writer' and table_schema = 'public' and table_name = 'storage_policies'),
  array['INSERT', 'SELECT', 'UPDATE'],
  'botmox_policy_writer holds select, insert, update (no delete, no truncate)'
);
select is(
  (select array_agg(privilege_type::text order by privilege_type)
   from information_schema.role_table_grants
   where grantee = 'service_role' and table_schema = 'public' and table_name = 'storage_policies'),
  array['DELETE', 'INSERT', 'SELECT', 'UPDATE'],
  'service_role holds select, insert, update, delete (no truncate, which RLS cannot filter)'
);
select ok(not exists (
    select 1 from information_schema.role_table_grants
    where table_schema = 'public' and table_name = 'storage_policies' and grantee in ('anon', 'PUBLIC')),
  'anon and PUBLIC hold nothing on the table');
select ok(not has_table_privilege('botmox_api', 'public.storage_policies', 'delete'), 'botmox_api cannot delete');
select ok(not has_schema_privilege('botmox_api', 'public', 'create'), 'botmox_api cannot create in public');

select ok(not has_function_privilege('anon', 'public.storage_policy_read(text)', 'execute'),
  'anon cannot call storage_policy_read');
select ok(not has_function_privilege('anon',
    'public.storage_policy_merge(text, text, text, boolean, bigint[], boolean)', 'execute'),
  'anon cannot call storage_policy_merge');
select ok(has_function_privilege('botmox_api',
    'public.storage_policy_replace(text, text, text, boolean, bigint[], boolean)', 'execute'),
  'botmox_api can call storage_policy_replace');
select ok(has_function_privilege('authenticated',
    'public.storage_policy_merge(text, text, text, boolean, bigint[], boolean)', 'execute'),
  'authenticated can call storage_policy_merge');
select ok(has_function_privilege('service_role', 'public.storage_policy_read(text)', 'execute'),
  'service_role can call storage_policy_read');

select isnt_definer('public', 'storage_policy_read', array['text'], 'storage_policy_read is SECURITY INVOKER');
select is_definer('botmox', 'storage_policy_write', array['boolean', 'text', 'text', 'boolean', 'bigint[]', 'boolean'],
  'the private write body is SECURITY DEFINER');
select function_owner_is('botmox', 'storage_policy_write', array['boolean', 'text', 'text', 'boolean', 'bigint[]', 'boolean'],
  'botmox_policy_writer', 'the write body runs as botmox_policy_writer (no BYPASSRLS), so RLS applies inside it');
select volatility_is('botmox', 'request_subject', array[]::text[], 'stable', 'request_subject is STABLE');
select isnt_definer('public', 'storage_policy_replace',
  array['text', 'text', 'text', 'boolean', 'bigint[]', 'boolean'], 'storage_policy_replace is SECURITY INVOKER');
select isnt_definer('public', 'storage_policy_merge',
  array['text', 'text', 'text', 'boolean', 'bigint[]', 'boolean'], 'storage_policy_merge is SECURITY INVOKER');
select ok(not exists (
    select 1 from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('public', 'botmox') and p.proname like any (array['storage_polic%', 'request_tenant_id', 'request_subject'])
      and not coalesce(p.proconfig @> array['search_path=""'], false)),
  'every function pins search_path to empty');
select volatility_is('botmox', 'request_tenant_id', array[]::text[], 'stable', 'request_tenant_id is STABLE');

select * from finish();
rollback;
