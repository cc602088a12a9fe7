-- Tenant isolation of agents, pairing codes and commands: tenant B cannot list, command, read the
-- commands of, cancel or revoke tenant A's agents, as `authenticated` (PostgREST with B's token) or
-- through the API's calls (botmox_api with B's claims); anon sees nothing; nothing of A changes.
begin;
select plan(39);

create function pg_temp.claims(p_tenant text, p_sub text) returns text language sql as $$
  select json_build_object('sub', p_sub, 'app_metadata', json_build_object('tenant_id', p_tenant))::text
$$;
create function pg_temp.digest(p_secret text) returns bytea language sql as $$
  select sha256(convert_to(p_secret, 'UTF8'))
$$;

-- Tenant A: an agent, connected, with one command; tenant B: an agent of its own.
create temporary table fixture (label text primary key, id uuid);
grant select on fixture to botmox_api, authenticated;
create function pg_temp.id(p_label text) returns uuid language sql as $$ select id from fixture where label = p_label $$;

set local role botmox_api;
select lives_ok($$select botmox.api_agent_pairing_create(pg_temp.claims('tenant-a', 'alice'), pg_temp.digest('code-a'))$$,
  'tenant-a creates a pairing code');
select lives_ok($$select botmox.api_agent_pairing_create(pg_temp.claims('tenant-b', 'bob'), pg_temp.digest('code-b'))$$,
  'tenant-b creates a pairing code');
select lives_ok($$select botmox.api_agent_pairing_create(pg_temp.claims('tenant-a', 'alice'), pg_temp.digest('code-a2'))$$,
  'tenant-a creates a second code');
reset role;
insert into fixture
select 'agent-a', agent_id from botmox.api_agent_register(pg_temp.digest('code-a'), pg_temp.digest('cred-a'), 'a-1', '1.0.0',
  '["syncthing.status"]');
insert into fixture
select 'agent-b', agent_id from botmox.api_agent_register(pg_temp.digest('code-b'), pg_temp.digest('cred-b'), 'b-1', '1.0.0',
  '["syncthing.status"]');
select lives_ok($$select botmox.api_agent_connect(pg_temp.id('agent-a'), pg_temp.digest('cred-a'), gen_random_uuid(), null, null)$$,
  'agent a connects');
insert into fixture
select 'command-a', id from botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'alice'), pg_temp.id('agent-a'),
  'syncthing.status', '{}', 60, 30);

create function pg_temp.tenant_a_state() returns text language sql as $$
  select format('%s/%s/%s/%s', a.revoked_at is null, a.connection_id is not null, c.status, c.created_by)
  from public.agents a join public.agent_commands c on c.agent_id = a.id where a.id = pg_temp.id('agent-a')
$$;
select is(pg_temp.tenant_a_state(), 't/t/queued/alice', 'tenant-a as set up');

-- ---------------------------------------------------------------- authenticated, tenant b
set local role authenticated;
set local request.jwt.claims = '{"sub": "bob", "role": "authenticated", "app_metadata": {"tenant_id": "tenant-b"}}';
select results_eq($$select name from public.agents$$, $$values ('b-1'::text)$$,
  'authenticated b lists its own agent only');
select is_empty($$select 1 from public.agents where id = pg_temp.id('agent-a')$$, 'authenticated b: a''s agent is invisible');
select is_empty($$select 1 from public.agent_commands$$, 'authenticated b: no command of a is visible');
select results_eq($$select tenant_id, created_by from public.agent_pairings$$, $$values ('tenant-b'::text, 'bob'::text)$$,
  'authenticated b: only its own pairing');
select throws_ok($$select credential_hash from public.agents$$, '42501', 'permission denied for table agents',
  'authenticated: no digest, not even its own agent''s');
select throws_ok($$insert into public.agent_commands (tenant_id, agent_id, kind, deadline, created_by)
                   values ('tenant-a', pg_temp.id('agent-a'), 'syncthing.status', now() + interval '1 minute', 'bob')$$,
  '42501', 'permission denied for table agent_commands', 'authenticated b cannot command a''s agent directly');
select throws_ok($$update public.agents set revoked_at = now(), revoked_by = 'bob' where id = pg_temp.id('agent-a')$$,
  '42501', 'permission denied for table agents', 'authenticated b cannot revoke a''s agent directly');
select throws_ok($$update public.agent_commands set status = 'cancelled'$$,
  '42501', 'permission denied for table agent_commands', 'authenticated b cannot touch commands directly');
select throws_ok($$delete from public.agents$$, '42501', 'permission denied for table agents', 'authenticated: no delete');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-a', 'bob'), pg_temp.id('agent-a'), 'syncthing.status', '{}', 60, 30)$$,
  '42501', 'permission denied for function api_agent_command_enqueue',
  'authenticated cannot call the API''s functions (it would choose its claims)');
select throws_ok($$select botmox.api_agent_revoke(pg_temp.claims('tenant-a', 'bob'), pg_temp.id('agent-a'))$$,
  '42501', 'permission denied for function api_agent_revoke', 'nor revoke through them');
select throws_ok($$select botmox.api_agent_connect(pg_temp.id('agent-a'), pg_temp.digest('cred-a'), gen_random_uuid(), null, null)$$,
  '42501', 'permission denied for function api_agent_connect', 'nor speak for an agent');

-- The same user with tenant a's claims sees a's rows (the isolation is the claims', not the role's).
set local request.jwt.claims = '{"sub": "alice", "role": "authenticated", "app_metadata": {"tenant_id": "tenant-a"}}';
select results_eq($$select id from public.agents$$, $$select pg_temp.id('agent-a')$$, 'authenticated a sees its agent');
select results_eq($$select id, status from public.agent_commands$$, $$values (pg_temp.id('command-a'), 'queued'::text)$$,
  'authenticated a reads its command');
-- A tenant_id in user_metadata (user-editable) is not honoured.
set local request.jwt.claims = '{"sub": "bob", "app_metadata": {"tenant_id": "tenant-b"}, "user_metadata": {"tenant_id": "tenant-a"}}';
select is_empty($$select 1 from public.agents where tenant_id = 'tenant-a'$$, 'user_metadata.tenant_id is ignored');
reset role;

-- ---------------------------------------------------------------- botmox_api with tenant b's claims
set local role botmox_api;
select results_eq($$select name from botmox.api_agents_list(pg_temp.claims('tenant-b', 'bob'), 30)$$, $$values ('b-1'::text)$$,
  'the API''s list for b: b''s agent only');
select throws_ok(
  $$select botmox.api_agent_command_enqueue(pg_temp.claims('tenant-b', 'bob'), pg_temp.id('agent-a'), 'syncthing.status', '{}', 60, 30)$$,
  'BM404', 'agent not found', 'b cannot command a''s agent: not found, as an unknown id');
select is_empty($$select * from botmox.api_agent_command_read(pg_temp.claims('tenant-b', 'bob'), pg_temp.id('agent-a'), pg_temp.id('command-a'))$$,
  'b cannot read a''s command');
select throws_ok($$select botmox.api_agent_command_cancel(pg_temp.claims('tenant-b', 'bob'), pg_temp.id('agent-a'), pg_temp.id('command-a'))$$,
  'BM404', 'command not found', 'b cannot cancel a''s command');
select throws_ok($$select botmox.api_agent_command_cancel(pg_temp.claims('tenant-b', 'bob'), pg_temp.id('agent-b'), pg_temp.id('command-a'))$$,
  'BM404', 'command not found', 'nor under its own agent''s id');
select throws_ok($$select botmox.api_agent_revoke(pg_temp.claims('tenant-b', 'bob'), pg_temp.id('agent-a'))$$,
  'BM404', 'agent not found', 'b cannot revoke a''s agent');
do $$ begin perform set_config('request.jwt.claims', pg_temp.claims('tenant-b', 'bob'), true); end $$;
select is_empty($$select 1 from public.agents where tenant_id <> 'tenant-b'
                  union all select 1 from public.agent_commands where tenant_id <> 'tenant-b'
                  union all select 1 from public.agent_pairings where tenant_id <> 'tenant-b'$$,
  'botmox_api with b''s claims sees no row of another tenant in any of the three tables');
do $$ begin perform set_config('request.jwt.claims', '', true); end $$;
select is_empty($$select 1 from public.agents union all select 1 from public.agent_commands
                  union all select 1 from public.agent_pairings$$,
  'botmox_api without claims sees nothing (fail closed)');
select is_empty($$select * from botmox.api_agents_list(null, 30)$$, 'the list without a tenant is empty (fail closed)');

-- An agent's credential is its own tenant's only: b's agent cannot act on a's command.
select throws_ok($$select botmox.api_agent_command_ack(pg_temp.id('agent-b'), pg_temp.digest('cred-b'), pg_temp.id('command-a'))$$,
  'BM404', 'command not found', 'b''s agent cannot ack a''s command');
select throws_ok($$select botmox.api_agent_command_result(pg_temp.id('agent-b'), pg_temp.digest('cred-b'), pg_temp.id('command-a'), true, '{}', null, null)$$,
  'BM404', 'command not found', 'nor deliver its result');
select throws_ok($$select botmox.api_agent_connect(pg_temp.id('agent-a'), pg_temp.digest('cred-b'), gen_random_uuid(), null, null)$$,
  'BM403', 'agent credential refused', 'b''s credential does not open a''s agent');
select throws_ok($$select botmox.api_agent_register(pg_temp.digest('code-a'), pg_temp.digest('cred-x'), 'x', '1', '[]')$$,
  'BM401', 'agent pairing code refused', 'a''s used code registers nothing');
select results_eq(
  $$select tenant_id from botmox.api_agent_register(pg_temp.digest('code-a2'), pg_temp.digest('cred-a2'), 'a-2', '1', '[]')$$,
  $$values ('tenant-a'::text)$$, 'a code registers in its creator''s tenant, whoever presents it');
reset role;

select is(pg_temp.tenant_a_state(), 't/t/queued/alice', 'tenant-a unchanged by everything b tried');

-- ---------------------------------------------------------------- anon and service_role
set local role anon;
select throws_ok($$select 1 from public.agents$$, '42501', 'permission denied for table agents', 'anon cannot read agents');
select throws_ok($$select 1 from public.agent_commands$$, '42501', 'permission denied for table agent_commands',
  'anon cannot read commands');
select throws_ok($$select botmox.api_agents_list(pg_temp.claims('tenant-a', 'x'), 30)$$, '42501', null,
  'anon cannot call the API''s functions');
reset role;
set local role service_role;
select is((select count(*) from public.agents), 3::bigint, 'service_role (BYPASSRLS, Supabase''s admin key) sees every tenant');
reset role;

select * from finish();
rollback;
