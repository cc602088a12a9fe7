-- Agents, pairing codes and commands (migration 20261206160000_agents): shape, privileges, and the
-- behaviour of every botmox.api_agent* function as the API calls them (as botmox_api, one call per
-- statement). Tenant isolation: 61_agents_isolation.sql. Races and NOTIFY: test_agents.py.
begin;
select plan(126);

create function pg_temp.claims(p_tenant text, p_sub text) returns text language sql as $$
  select json_build_object('sub', p_sub, 'app_metadata', json_build_object('tenant_id', p_tenant))::text
$$;
-- What the API stores and passes: the SHA-256 of a secret it generated.
create function pg_temp.digest(p_secret text) returns bytea language sql as $$
  select sha256(convert_to(p_secret, 'UTF8'))
$$;
-- SQLSTATE and detail of a refused statement ('ok' when it runs).
create function pg_temp.refusal(p_sql text) returns text language plpgsql as $$
declare
  v_state text;
  v_detail text;
begin
  execute p_sql;
  return 'ok';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_detail = pg_exception_detail;
  return v_state || coalesce(' ' || nullif(v_detail, ''), '');
end
$$;
-- A command as the checks compare it.
create function pg_temp.command_state(p_id uuid) returns text language sql as $$
  select format('%s/%s/%s/%s/%s', status, deliveries, coalesce(progress::text, '-'),
                coalesce(result_data::text, '-'), coalesce(error_code, '-'))
  from public.agent_commands where id = p_id
$$;

-- ---------------------------------------------------------------- shape
select has_table('public', 'agent_pairings', 'public.agent_pairings exists');
select has_table('public', 'agents', 'public.agents exists');
select has_table('public', 'agent_commands', 'public.agent_commands exists');
select ok((select bool_and(relrowsecurity and relforcerowsecurity) from pg_catalog.pg_class
           where oid in ('public.agent_pairings'::regclass, 'public.agents'::regclass, 'public.agent_commands'::regclass)),
  'row-level security is enabled and forced on the three tables');
select col_type_is('public', 'agents', 'credential_hash', 'bytea', 'the credential is stored as a digest');
select col_type_is('public', 'agent_pairings', 'code_hash', 'bytea', 'the pairing code is stored as a digest');
select has_trigger('public', 'agent_commands', 'agent_commands_transition', 'the status machine is a trigger');
select ok((select not rolcanlogin and not rolsuper and not rolbypassrls from pg_catalog.pg_roles
           where rolname = 'botmox_agent_writer'), 'botmox_agent_writer: NOLOGIN, no superuser, no BYPASSRLS');
select ok((select not rolcanlogin and not rolsuper and not rolbypassrls from pg_catalog.pg_roles
           where rolname = 'botmox_agent_link'), 'botmox_agent_link: NOLOGIN, no superuser, no BYPASSRLS');
select ok(not pg_catalog.pg_has_role('botmox_api', 'botmox_agent_writer', 'member')
          and not pg_catalog.pg_has_role('botmox_api', 'botmox_agent_link', 'member')
          and not pg_catalog.pg_has_role('authenticated', 'botmox_agent_writer', 'member')
          and not pg_catalog.pg_has_role('authenticated', 'botmox_agent_link', 'member'),
  'the definer roles cannot be borrowed by the callers');

-- ---------------------------------------------------------------- privileges
create temporary table agent_api (signature regprocedure primary key, owner text);
insert into agent_api
select p.oid::regprocedure, pg_catalog.pg_get_userbyid(p.proowner)
from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
where n.nspname = 'botmox' and p.proname like 'api\_agent%';
select is((select count(*) from agent_api), 16::bigint, 'sixteen api_agent functions');
select is((select count(*) from agent_api where has_function_privilege('botmox_api', signature, 'execute')),
  16::bigint, 'botmox_api may call every one');
select is_empty(
  $$select role, signature from agent_api
    cross join unnest(array['public', 'anon', 'authenticated', 'service_role']) as roles(role)
    where has_function_privilege(role, signature, 'execute')$$,
  'no other role may call them (they choose the claims, or speak for an agent)');
select is_empty(
  $$select p.oid::regprocedure from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'botmox' and (p.proname like 'api\_agent%' or p.proname like 'agent\_%')
      and not coalesce(p.proconfig @> array['search_path=""'], false)$$,
  'every agent function pins search_path to empty');
select bag_eq(
  $$select signature::text || ' ' || owner from agent_api where owner <> 'botmox_agent_link'$$,
  array[
    'botmox.api_agent_pairing_create(text,bytea) botmox_agent_writer',
    'botmox.api_agent_revoke(text,uuid) botmox_agent_writer',
    'botmox.api_agent_command_enqueue(text,uuid,text,jsonb,integer,integer) botmox_agent_writer',
    'botmox.api_agent_command_cancel(text,uuid,uuid) botmox_agent_writer',
    'botmox.api_agents_list(text,integer) ' || current_user,
    'botmox.api_agent_command_read(text,uuid,uuid) ' || current_user],
  'the tenant''s writes run as botmox_agent_writer, its reads as the caller; the rest as botmox_agent_link');
select ok((select bool_and(p.prosecdef = (a.owner like 'botmox\_agent\_%'))
           from agent_api a join pg_catalog.pg_proc p on p.oid = a.signature),
  'SECURITY DEFINER exactly where a definer role owns the function');
select is_empty(
  $$select role, tbl, priv
    from unnest(array['anon', 'authenticated', 'botmox_api']) as roles(role)
    cross join unnest(array['public.agent_pairings', 'public.agents', 'public.agent_commands']) as tables(tbl)
    cross join unnest(array['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) as privs(priv)
    where has_table_privilege(role, tbl, priv)$$,
  'no caller may write the tables directly');
select ok(not has_any_column_privilege('anon', 'public.agents', 'select')
          and not has_any_column_privilege('anon', 'public.agent_pairings', 'select')
          and not has_any_column_privilege('anon', 'public.agent_commands', 'select'),
  'anon reads nothing');
select ok(not has_column_privilege('authenticated', 'public.agents', 'credential_hash', 'select')
          and not has_column_privilege('botmox_api', 'public.agents', 'credential_hash', 'select')
          and not has_column_privilege('authenticated', 'public.agent_pairings', 'code_hash', 'select')
          and not has_column_privilege('botmox_api', 'public.agent_pairings', 'code_hash', 'select')
          and not has_column_privilege('authenticated', 'public.agents', 'connection_id', 'select')
          and not has_column_privilege('botmox_api', 'public.agents', 'connection_id', 'select'),
  'the readers never see a digest, nor the API''s connection id');
select ok(has_column_privilege('authenticated', 'public.agents', 'last_seen_at', 'select')
          and has_table_privilege('authenticated', 'public.agent_commands', 'select'),
  'authenticated reads the rest (under row-level security)');

-- ---------------------------------------------------------------- pairing codes, as botmox_api
set local role botmox_api;

select results_eq(
  $$select tenant_id, created_by, expires_at - created_at, created_at = now()
    from botmox.api_agent_pairing_create(pg_temp.claims('tenant-a', 'alice'), pg_temp.digest('code-1'))$$,
  $$values ('tenant-a'::text, 'alice'::text, interval '10 minutes', true)$$,
  'a pairing code: the claims'' tenant, created by their sub, expires in 10 minutes');
select throws_ok($$select botmox.api_agent_pairing_create(pg_temp.claims('tenant-a', 'alice'), pg_temp.digest('code-1'))$$,
  '23505', null, 'the same code twice is refused (a code names one pairing)');
select throws_ok($$select botmox.api_agent_pairing_create('{"app_metadata": {"tenant_id": "tenant-a"}}', pg_temp.digest('code-x'))$$,
  '42501', 'agent call without a caller', 'claims without a sub are refused');
select throws_ok($$select botmox.api_agent_pairing_create('{"sub": "alice"}', pg_temp.digest('code-x'))$$,
  '42501', 'agent call without a tenant', 'claims without a tenant are refused');
select throws_ok($$select botmox.api_agent_pairing_create(null, pg_temp.digest('code-x'))$$,
  '42501', 'agent call without a tenant', 'no claims at all are refused');
select throws_ok($$select botmox.api_agent_pairing_create(pg_temp.claims('tenant-a', 'alice'), '\x0102'::bytea)$$,
  '22023', 'pairing code hash must be a SHA-256 digest (32 bytes)', 'a code hash that is no SHA-256 digest is refused');
select lives_ok($$select botmox.api_agent_pairing_create(pg_temp.claims('tenant-a', 'alice'), pg_temp.digest('code-2'))$$,
  'a second code for tenant-a');
select lives_ok($$select botmox.api_agent_pairing_create(pg_temp.claims('tenant-a', 'alice'), pg_temp.digest('code-expired'))$$,
  'a code that will have expired');
reset role;
update public.agent_pairings set created_at = now() - interval '11 minutes', expires_at = now() - interval '1 minute'
where code_hash = pg_temp.digest('code-expired');
set local role botmox_api;

-- ---------------------------------------------------------------- registration
select throws_ok(
  $$select botmox.api_agent_register(pg_temp.digest('no-such-code'), pg_temp.digest('cred-1'), 'pve-1', '1.0.0', '[]')$$,
  'BM401', 'agent pairing code refused', 'an unknown code is refused');
select is(pg_temp.refusal(
  $$select botmox.api_agent_register(pg_temp.digest('code-expired'), pg_temp.digest('cred-1'), 'pve-1', '1.0.0', '[]')$$),
  'BM401 unknown, expired or already used', 'an expired code is refused the same way');
select throws_ok(
  $$select botmox.api_agent_register(pg_temp.digest('code-1'), pg_temp.digest('cred-1'), 'pve-1', '1.0.0', '["shell.exec"]')$$,
  'BM422', 'capabilities must be a JSON array of distinct allowlisted command kinds', 'an unknown kind is refused');
select throws_ok(
  $$select botmox.api_agent_register(pg_temp.digest('code-1'), pg_temp.digest('cred-1'), 'pve-1', '1.0.0',
      '["syncthing.status", "syncthing.status"]')$$,
  'BM422', null, 'a repeated kind is refused');
select throws_ok(
  $$select botmox.api_agent_register(pg_temp.digest('code-1'), pg_temp.digest('cred-1'), 'pve-1', '1.0.0', '{"k": 1}')$$,
  'BM422', null, 'capabilities that are no array are refused');
select throws_ok(
  $$select botmox.api_agent_register(pg_temp.digest('code-1'), pg_temp.digest('cred-1'), '', '1.0.0', '[]')$$,
  '23514', null, 'an empty name is refused (agents_name_check)');
select throws_ok(
  $$select botmox.api_agent_register(pg_temp.digest('code-1'), 'short'::bytea, 'pve-1', '1.0.0', '[]')$$,
  '22023', 'credential hash must be a SHA-256 digest (32 bytes)', 'a credential hash that is no digest is refused');
select results_eq(
  $$select tenant_id, name, version, capabilities, created_by
    from botmox.api_agent_register(pg_temp.digest('code-1'), pg_temp.digest('cred-1'), 'pve-1', '1.0.0',
      '["syncthing.status", "proxmox.vm.start"]')$$,
  $$values ('tenant-a'::text, 'pve-1'::text, '1.0.0'::text, '["syncthing.status", "proxmox.vm.start"]'::jsonb, 'alice'::text)$$,
  'the refused attempts consumed nothing: the code registers an agent in its tenant, created by the code''s creator');
select throws_ok(
  $$select botmox.api_agent_register(pg_temp.digest('code-1'), pg_temp.digest('cred-9'), 'pve-9', '1.0.0', '[]')$$,
  'BM401', 'agent pairing code refused', 'a used code is refused');
select lives_ok(
  $$select botmox.api_agent_register(pg_temp.digest('code-2'), pg_temp.digest('cred-2'), 'pve-2', '1.0.0', '["syncthing.status"]')$$,
  'a second agent of tenant-a');
reset role;

create temporary table agent_ids as
select name, id from public.agents;
grant select on agent_ids to botmox_api;
create function pg_temp.agent(p_name text) returns uuid language sql as $$ select id from agent_ids where name = p_name $$;

select results_eq(
  $$select a.credential_hash = pg_temp.digest('cred-1'), p.consumed_at is not null, p.created_by
    from public.agents a join public.agent_pairings p on p.id = a.pairing_id where a.name = 'pve-1'$$,
  $$values (true, true, 'alice'::text)$$,
  'stored: the credential''s digest only, the pairing consumed, its creator recorded');
select is_empty(
  $$select 1 from public.agents a, public.agent_pairings p
    where position(convert_to('cred-1', 'UTF8') in a.credential_hash) > 0
       or position(convert_to('code-1', 'UTF8') in p.code_hash) > 0$$,
  'no secret is stored in clear');

-- ---------------------------------------------------------------- connection, presence, heartbeat
set local role botmox_api;
select throws_ok(
  $$select botmox.api_agent_connect(pg_temp.agent('pve-1'), pg_temp.digest('cred-2'), gen_random_uuid(), null, null)$$,
  'BM403', 'agent credential refused', 'another agent''s credential is refused');
select throws_ok(
  $$select botmox.api_agent_connect(gen_random_uuid(), pg_temp.digest('cred-1'), gen_random_uuid(), null, null)$$,
  'BM403', 'agent credential refused', 'an unknown agent is refused the same way');
select throws_ok(
  $$select botmox.api_agent_connect(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), gen_random_uuid(), null, '["x"]')$$,
  'BM422', null, 'a hello with an unknown capability is refused');
select results_eq(
  $$select tenant_id, name, version, last_seen_at = now()
    from botmox.api_agent_connect(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'),
      '00000000-0000-4000-8000-000000000001', '1.1.0', null)$$,
  $$values ('tenant-a'::text, 'pve-1'::text, '1.1.0'::text, true)$$,
  'connect: the agent''s tenant for the tunnel; the hello''s version is recorded');
select results_eq(
  $$select name, online from botmox.api_agents_list(pg_temp.claims('tenant-a', 'alice'), 30) order by name$$,
  $$values ('pve-1'::text, true), ('pve-2'::text, false)$$,
  'list: this tenant''s agents, online when a tunnel holds them and they were seen within the window');
select is(botmox.api_agent_heartbeat(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), '00000000-0000-4000-8000-000000000001'),
  now(), 'a heartbeat stamps last_seen_at');
select lives_ok(
  $$select botmox.api_agent_connect(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'),
      '00000000-0000-4000-8000-000000000002', null, null)$$,
  'the agent reconnects (another connection id)');
select is(pg_temp.refusal(
  $$select botmox.api_agent_heartbeat(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), '00000000-0000-4000-8000-000000000001')$$),
  'BM403 the agent is connected through another connection', 'the old connection''s heartbeat is refused');
select is(botmox.api_agent_disconnected(pg_temp.agent('pve-1'), '00000000-0000-4000-8000-000000000001'), false,
  'the old connection''s late close does not mark the agent offline');
select results_eq($$select online from botmox.api_agents_list(pg_temp.claims('tenant-a', 'alice'), 30) where name = 'pve-1'$$,
  $$values (true)$$, '... it is still online');
select lives_ok(
  $$select botmox.api_agent_connect(pg_temp.agent('pve-2'), pg_temp.digest('cred-2'),
      '00000000-0000-4000-8000-000000000003', null, null)$$, 'pve-2 connects');

-- ---------------------------------------------------------------- enqueue
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-1'),
      'shell.exec', '{}', 60, 30)$$,
  'BM422', 'unknown command kind', 'an unknown kind is refused');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-1'),
      'proxmox.vm.stop', '{}', 60, 30)$$,
  'BM422', 'command kind not among the agent''s capabilities', 'a kind the agent did not declare is refused');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-1'),
      'proxmox.vm.start', '[1]', 60, 30)$$,
  'BM422', 'command params must be a JSON object of at most 16 KiB', 'params that are no object are refused');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-1'),
      'proxmox.vm.start', jsonb_build_object('x', repeat('y', 17000)), 60, 30)$$,
  'BM422', 'command params must be a JSON object of at most 16 KiB', 'oversized params are refused');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-1'),
      'proxmox.vm.start', '{}', 0, 30)$$,
  'BM422', 'command deadline must be 1 to 86400 seconds away', 'a deadline out of range is refused');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), gen_random_uuid(),
      'proxmox.vm.start', '{}', 60, 30)$$,
  'BM404', 'agent not found', 'an unknown agent is not found');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', null), pg_temp.agent('pve-1'),
      'proxmox.vm.start', '{}', 60, 30)$$,
  '42501', 'agent call without a caller', 'a command needs a caller');

create temporary table cmd (label text primary key, id uuid);
grant select, insert on cmd to botmox_api;
create function pg_temp.cmd(p_label text) returns uuid language sql as $$ select id from cmd where label = p_label $$;
create function pg_temp.enqueue(p_label text, p_agent text, p_kind text) returns text language plpgsql as $$
begin
  insert into cmd
  select p_label, c.id from botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent(p_agent),
    p_kind, '{"vmid": 100}', 60, 30) as c;
  return p_label;
end
$$;

select results_eq(
  $$select status, kind, params, created_by, deadline = now() + interval '60 seconds', deliveries
    from botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-1'),
      'proxmox.vm.start', '{"vmid": 100}', 60, 30)$$,
  $$values ('queued'::text, 'proxmox.vm.start'::text, '{"vmid": 100}'::jsonb, 'alice'::text, true, 0)$$,
  'enqueue: queued, the caller as author, the deadline from the database''s clock');
select is(pg_temp.enqueue('c1', 'pve-1', 'syncthing.status'), 'c1', 'enqueue c1 for pve-1');
select is(pg_temp.enqueue('c2', 'pve-1', 'syncthing.status'), 'c2', 'enqueue c2 for pve-1');
select is(pg_temp.enqueue('other', 'pve-2', 'syncthing.status'), 'other', 'enqueue other for pve-2');
select is((select count(*) from botmox.api_agent_commands_pending(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'))),
  3::bigint, 'pending: the agent''s three unacknowledged commands');
select results_eq(
  $$select id from botmox.api_agent_commands_pending(pg_temp.agent('pve-2'), pg_temp.digest('cred-2'))$$,
  $$select pg_temp.cmd('other')$$, 'pending: only the agent''s own');
select throws_ok($$select botmox.api_agent_commands_pending(pg_temp.agent('pve-1'), pg_temp.digest('cred-2'))$$,
  'BM403', 'agent credential refused', 'pending needs the agent''s credential');

-- ---------------------------------------------------------------- the status machine, as the agent
select results_eq(
  $$select status, deliveries, sent_at = now() from botmox.api_agent_command_sent(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'))$$,
  $$values ('sent'::text, 1, true)$$, 'sent: delivered once');
select results_eq(
  $$select status, deliveries from botmox.api_agent_command_sent(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'))$$,
  $$values ('sent'::text, 2)$$, 'sent again (re-sent after a reconnect): counted');
select is(pg_temp.refusal($$select botmox.api_agent_command_progress(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'), '{"percent": 5}')$$),
  'BM409 status=sent,to=running', 'progress before the ack is refused');
select results_eq(
  $$select status, acked_at = now() from botmox.api_agent_command_ack(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'))$$,
  $$values ('acked'::text, true)$$, 'ack');
select is(pg_temp.refusal($$select botmox.api_agent_command_ack(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'))$$),
  'BM409 status=acked,to=acked', 'a second ack is refused');
select is((select count(*) from botmox.api_agent_commands_pending(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'))),
  3::bigint, 'an acknowledged command without a result is still pending (re-sent after a reconnect)');
select results_eq(
  $$select status, deliveries, sent_at = now(), acked_at = now() from botmox.api_agent_command_sent(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'))$$,
  $$values ('acked'::text, 3, true, true)$$, 'sent again while acked: the delivery is counted, the status stays acked');
select is(pg_temp.refusal($$select botmox.api_agent_command_ack(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'))$$),
  'BM409 status=acked,to=acked', 'an ack after the re-delivery is still refused (the API does not store it twice)');
reset role;
select is(pg_temp.refusal($$update public.agent_commands set status = 'acked' where id = pg_temp.cmd('c1')$$),
  'BM409 status=acked,to=acked', 'the status machine: acked -> acked only as a re-delivery (deliveries + 1)');
select is(pg_temp.refusal($$update public.agent_commands set deliveries = deliveries + 1, progress = '{"percent": 1}' where id = pg_temp.cmd('c1')$$),
  'BM409 status=acked,to=acked', 'the status machine: a re-delivery changes nothing else');
set local role botmox_api;
select throws_ok($$select botmox.api_agent_command_progress(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'), '[5]')$$,
  'BM422', 'command progress must be a JSON object of at most 4 KiB', 'progress that is no object is refused');
select results_eq(
  $$select status, progress from botmox.api_agent_command_progress(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'), '{"percent": 50}')$$,
  $$values ('running'::text, '{"percent": 50}'::jsonb)$$, 'progress: running');
select lives_ok($$select botmox.api_agent_command_progress(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'), '{"percent": 90}')$$,
  'progress again');
select is(pg_temp.refusal($$select botmox.api_agent_command_result(pg_temp.agent('pve-2'), pg_temp.digest('cred-2'), pg_temp.cmd('c1'), true, '{}', null, null)$$),
  'BM404 no such command for this agent', 'a result from another agent is refused as not found');
select is(pg_temp.refusal($$select botmox.api_agent_command_result(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), gen_random_uuid(), true, '{}', null, null)$$),
  'BM404 no such command for this agent', 'a result for a command never sent is refused');
select throws_ok($$select botmox.api_agent_command_result(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'), true, '{}', 'E', 'm')$$,
  'BM422', 'command result must be ok with data, or an error code and message', 'ok with an error is refused');
select throws_ok($$select botmox.api_agent_command_result(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'), false, null, 'E', null)$$,
  'BM422', null, 'an error without a message is refused');
select is(pg_temp.command_state(pg_temp.cmd('c1')), 'running/3/{"percent": 90}/-/-', 'the refusals changed nothing');
select results_eq(
  $$select status, deliveries, progress from botmox.api_agent_command_sent(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'))$$,
  $$values ('running'::text, 4, '{"percent": 90}'::jsonb)$$, 'sent again while running: counted, status and progress kept');
select results_eq(
  $$select status, result_data, finished_at = now()
    from botmox.api_agent_command_result(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'), true, '{"state": "running"}', null, null)$$,
  $$values ('succeeded'::text, '{"state": "running"}'::jsonb, true)$$, 'the result: succeeded with its data');
select is(pg_temp.refusal($$select botmox.api_agent_command_result(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'), false, null, 'E', 'late')$$),
  'BM409 status=succeeded,to=failed', 'a second result is refused');
select is(pg_temp.refusal($$select botmox.api_agent_command_progress(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'), '{}')$$),
  'BM409 status=succeeded,to=running', 'progress after the result is refused');
select is(pg_temp.refusal($$select botmox.api_agent_command_sent(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c1'))$$),
  'BM409 status=succeeded,to=sent', 'a terminal command is never sent again');
select is(pg_temp.command_state(pg_temp.cmd('c1')), 'succeeded/4/{"percent": 90}/{"state": "running"}/-',
  'the result is stored once');

select results_eq(
  $$select status, error_code, error_message
    from botmox.api_agent_command_result(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('c2'), false, null, 'SYNCTHING_DOWN', 'connection refused')$$,
  $$values ('failed'::text, 'SYNCTHING_DOWN'::text, 'connection refused'::text)$$,
  'a result may skip the ack (lost with a connection): failed with its error');

-- ---------------------------------------------------------------- the tenant reads and cancels
select results_eq(
  $$select status, progress, result_data from botmox.api_agent_command_read(pg_temp.claims('tenant-a', 'bob'), pg_temp.agent('pve-1'), pg_temp.cmd('c1'))$$,
  $$values ('succeeded'::text, '{"percent": 90}'::jsonb, '{"state": "running"}'::jsonb)$$,
  'read: status, progress and result');
select is_empty(
  $$select * from botmox.api_agent_command_read(pg_temp.claims('tenant-a', 'bob'), pg_temp.agent('pve-2'), pg_temp.cmd('c1'))$$,
  'read under another agent''s id: nothing');
select results_eq(
  $$select status, error_code, error_message from botmox.api_agent_command_cancel(pg_temp.claims('tenant-a', 'bob'), pg_temp.agent('pve-2'), pg_temp.cmd('other'))$$,
  $$values ('cancelled'::text, 'CANCELLED'::text, 'cancelled by bob'::text)$$, 'cancel an open command');
select is(pg_temp.refusal($$select botmox.api_agent_command_ack(pg_temp.agent('pve-2'), pg_temp.digest('cred-2'), pg_temp.cmd('other'))$$),
  'BM409 status=cancelled,to=acked', 'the agent cannot ack a cancelled command');
select is(pg_temp.refusal($$select botmox.api_agent_command_cancel(pg_temp.claims('tenant-a', 'bob'), pg_temp.agent('pve-1'), pg_temp.cmd('c1'))$$),
  'BM409 status=succeeded,to=cancelled', 'a finished command cannot be cancelled');
select throws_ok($$select botmox.api_agent_command_cancel(pg_temp.claims('tenant-a', 'bob'), pg_temp.agent('pve-1'), gen_random_uuid())$$,
  'BM404', 'command not found', 'cancel of an unknown command');

-- ---------------------------------------------------------------- deadlines
select is(pg_temp.enqueue('late', 'pve-1', 'syncthing.status'), 'late', 'enqueue late for pve-1');
reset role;
-- Forge an elapsed deadline (the trigger forbids changing it, as it should; replica mode skips it).
set local session_replication_role = replica;
update public.agent_commands set created_at = now() - interval '2 minutes', deadline = now() - interval '1 minute'
where id = pg_temp.cmd('late');
set local session_replication_role = origin;
set local role botmox_api;
select is(pg_temp.refusal($$select botmox.api_agent_command_result(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('late'), true, '{}', null, null)$$),
  'BM409 status=queued,to=succeeded,deadline passed', 'a result after the deadline is refused');
select ok(pg_temp.cmd('late') not in (select id from botmox.api_agent_commands_pending(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'))),
  'an expired command is not re-sent');
select results_eq($$select command_id, agent_id, tenant_id from botmox.api_agent_commands_expire(100)$$,
  $$values (pg_temp.cmd('late'), pg_temp.agent('pve-1'), 'tenant-a'::text)$$, 'the sweep expires exactly the overdue command');
select is(pg_temp.command_state(pg_temp.cmd('late')), 'expired/0/-/-/DEADLINE_EXCEEDED', 'expired, with its reason');
select is_empty($$select * from botmox.api_agent_commands_expire(100)$$, 'a second sweep finds nothing');

-- ---------------------------------------------------------------- the trigger, for every writer
reset role;
select throws_ok($$update public.agent_commands set status = 'queued' where id = pg_temp.cmd('c1')$$,
  'BM409', 'command status transition refused', 'even the owner cannot reopen a finished command');
select throws_ok($$update public.agent_commands set params = '{"vmid": 101}' where id = pg_temp.cmd('c2')$$,
  'BM409', 'command status transition refused', 'what a command is never changes');
select throws_ok($$update public.agent_commands set status = 'running' where id = pg_temp.cmd('c2')$$,
  'BM409', 'command status transition refused', 'failed is terminal');
select throws_ok($$insert into public.agent_commands (tenant_id, agent_id, kind, deadline, created_by)
                   values ('tenant-b', pg_temp.agent('pve-1'), 'syncthing.status', now() + interval '1 minute', 'x')$$,
  '23503', null, 'a command''s tenant is its agent''s tenant (foreign key)');

-- ---------------------------------------------------------------- offline
set local role botmox_api;
select is(botmox.api_agent_disconnected(pg_temp.agent('pve-2'), '00000000-0000-4000-8000-000000000003'), true,
  'the current connection closes');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-2'),
      'syncthing.status', '{}', 60, 30)$$,
  'BM503', 'agent offline', 'no command for an agent no tunnel holds (no silent queue)');
reset role;
update public.agents set last_seen_at = now() - interval '2 minutes' where id = pg_temp.agent('pve-1');
set local role botmox_api;
select is(pg_temp.refusal(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-1'),
      'syncthing.status', '{}', 60, 30)$$),
  'BM503 last_seen_at=' || (now() - interval '2 minutes')::text,
  'no command for an agent silent for longer than the window (a worker that died holding it)');
select results_eq($$select name, online from botmox.api_agents_list(pg_temp.claims('tenant-a', 'alice'), 30) order by name$$,
  $$values ('pve-1'::text, false), ('pve-2'::text, false)$$, 'both offline in the list');
select results_eq($$select name, online from botmox.api_agents_list(pg_temp.claims('tenant-a', 'alice'), 300) order by name$$,
  $$values ('pve-1'::text, true), ('pve-2'::text, false)$$, 'the window is the API''s');

-- ---------------------------------------------------------------- revoke
select lives_ok($$select botmox.api_agent_heartbeat(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), '00000000-0000-4000-8000-000000000002')$$,
  'pve-1 is back');
select is(pg_temp.enqueue('open-1', 'pve-1', 'syncthing.status'), 'open-1', 'enqueue open-1 for pve-1');
select is(pg_temp.enqueue('open-2', 'pve-1', 'proxmox.vm.start'), 'open-2', 'enqueue open-2 for pve-1');
select lives_ok($$select botmox.api_agent_command_ack(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('open-2'))$$,
  'one of them acknowledged');
select results_eq(
  $$select agent_id, revoked_at = now(), revoked_by, cancelled_commands
    from botmox.api_agent_revoke(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-1'))$$,
  $$values (pg_temp.agent('pve-1'), true, 'alice'::text, 3)$$, 'revoke: recorded, and its three open commands cancelled');
select is(pg_temp.command_state(pg_temp.cmd('open-2')), 'cancelled/0/-/-/AGENT_REVOKED', 'an open command of a revoked agent is cancelled');
select is(pg_temp.command_state(pg_temp.cmd('c1')), 'succeeded/4/{"percent": 90}/{"state": "running"}/-', 'a finished one is kept as it was');
select throws_ok($$select botmox.api_agent_heartbeat(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), '00000000-0000-4000-8000-000000000002')$$,
  'BM403', 'agent credential refused', 'the revoked agent''s heartbeat is refused (the tunnel closes)');
select throws_ok($$select botmox.api_agent_connect(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), gen_random_uuid(), null, null)$$,
  'BM403', 'agent credential refused', 'the revoked agent cannot connect again');
select throws_ok($$select botmox.api_agent_command_result(pg_temp.agent('pve-1'), pg_temp.digest('cred-1'), pg_temp.cmd('open-2'), true, '{}', null, null)$$,
  'BM403', 'agent credential refused', 'nor deliver a result');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.agent('pve-1'),
      'syncthing.status', '{}', 60, 3000)$$,
  'BM410', 'agent revoked', 'no command for a revoked agent');
select results_eq(
  $$select revoked_by, cancelled_commands from botmox.api_agent_revoke(pg_temp.claims('tenant-a', 'bob'), pg_temp.agent('pve-1'))$$,
  $$values ('alice'::text, 0)$$, 'revoking again changes nothing: the first revocation stands');
select throws_ok($$select botmox.api_agent_revoke(pg_temp.claims('tenant-a', 'alice'), gen_random_uuid())$$,
  'BM404', 'agent not found', 'revoke of an unknown agent');
select results_eq($$select name, online, revoked_at is not null from botmox.api_agents_list(pg_temp.claims('tenant-a', 'alice'), 300) order by name$$,
  $$values ('pve-1'::text, false, true), ('pve-2'::text, false, false)$$, 'the list shows the revocation');
select is(botmox.api_agent_disconnected(pg_temp.agent('pve-1'), '00000000-0000-4000-8000-000000000002'), false,
  'revoke already ended the connection''s presence');
reset role;

select * from finish();
rollback;
