-- Customer agents: one-time pairing codes, agents and their credentials, and the command bus.
--
-- Every rule lives here so the API's agent endpoints stay thin: each API call is ONE statement, a
-- botmox.api_agent_* function (its own transaction, one round trip), as for storage policies.
--
-- - Secrets never reach the database. The API generates the pairing code and the agent credential
--   (at least 128 random bits, e.g. secrets.token_urlsafe(32)) and passes only their SHA-256 digests
--   (bytea, 32 bytes). A digest of a high-entropy secret needs no salt or slow hash (nothing to guess),
--   and neither a row, a statement log nor an error message ever holds a usable secret. Comparing
--   digests with `=` leaks, by timing at most, how many leading bytes of a stored DIGEST match one the
--   caller chose, which does not help to find a preimage: constant-time semantics for the secret.
-- - Two kinds of callers, two definer roles (both NOLOGIN, NOBYPASSRLS, owning only these functions):
--   * A tenant's user, through the API (list, pair, revoke, command, read, cancel): the function takes
--     the request's claims as its first parameter (app_metadata.tenant_id, sub), declares them local
--     to the statement, and works under row-level security scoped to that tenant. Writes run as
--     botmox_agent_writer, whose policies are the same tenant policies as the callers'.
--   * The agent, through the API's tunnel (register, connect, heartbeat, deliveries, ack, progress,
--     result; and the API's expiry sweep): no user claims exist there. The agent is identified by its id and the digest
--     of its credential (or, to register, by the digest of a pairing code). These functions run as
--     botmox_agent_link, which sees every tenant's rows (its policies say so, scoped to it alone) and
--     touches only the rows of the agent it has just authenticated.
-- - Whether the user is an ADMIN of the tenant (pairing, revoke) is the API's check: the claims carry
--   no role the database could trust more than the API that verified the token.
-- - Only botmox_api may call the api_ functions (whoever calls them chooses the claims or speaks for
--   an agent). `authenticated` (PostgREST with a user's token) may READ its tenant's agents and
--   commands, without the digests, and write nothing: a direct write would skip the API's admin and
--   online checks. anon gets nothing.
-- - Delivery across API workers and instances: NOTIFY on channel botmox_agent_commands when a command
--   is queued or cancelled and when an agent is revoked; the payload holds ids only, never params.
-- - Presence: whichever worker holds an agent's tunnel records it (connection id, connected_at,
--   last_seen_at), so any worker can refuse a command to an offline agent in the same statement that
--   would queue it.
--
-- Custom SQLSTATEs (class BM, as BM412 of storage policies):
--   BM401 pairing code refused          BM403 agent credential refused
--   BM404 agent or command not found     BM409 command status transition refused
--   BM410 agent revoked                  BM422 command or capabilities refused
--   BM503 agent offline
-- Contract: docs/contracts/agents-sql.md. Adds objects only: the API already running is unaffected.

do $roles$
declare
  v_role text;
begin
  foreach v_role in array array['botmox_agent_writer', 'botmox_agent_link'] loop
    if not exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute format(
        'create role %I nologin noinherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls', v_role);
    end if;
    -- A definer role that can log in or skip row-level security would void the isolation below.
    if exists (
      select 1 from pg_catalog.pg_roles
      where rolname = v_role and (rolsuper or rolbypassrls or rolcanlogin)
    ) then
      raise exception 'role % must be NOLOGIN, NOSUPERUSER and NOBYPASSRLS', v_role;
    end if;
    -- ALTER ... OWNER TO needs membership in the new owner unless the migrating role is a superuser.
    if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
      execute format('grant %I to %I', v_role, current_user);
    end if;
  end loop;
end
$roles$;

grant usage on schema botmox to botmox_agent_writer, botmox_agent_link;
grant usage on schema public to botmox_agent_writer, botmox_agent_link;
grant execute on function botmox.request_tenant_id() to botmox_agent_writer;
grant execute on function botmox.request_subject() to botmox_agent_writer;

-- ------------------------------------------------------------------------------------------------
-- The command kinds an agent may declare and be sent. One home: the immutable list below; a new kind
-- is a new migration replacing this function (rows already stored are not re-checked).

create function botmox.agent_command_kinds()
returns text[]
language sql
immutable
parallel safe
set search_path = ''
as $$
  select array[
    'syncthing.status',
    'syncthing.folders.list',
    'syncthing.folder.rescan',
    'syncthing.device.pause',
    'syncthing.device.resume',
    'proxmox.nodes.list',
    'proxmox.vms.list',
    'proxmox.vm.status',
    'proxmox.vm.start',
    'proxmox.vm.stop',
    'proxmox.vm.clone'
  ]::text[]
$$;

comment on function botmox.agent_command_kinds() is
  'The allowlisted command kinds (docs/contracts/agents-sql.md).';

-- A capabilities document: a JSON array of distinct allowlisted kinds (at most all of them).
create function botmox.agent_capabilities_valid(p_capabilities jsonb)
returns boolean
language sql
immutable
parallel safe
set search_path = ''
as $$
  select coalesce(
    pg_catalog.jsonb_typeof(p_capabilities) = 'array'
    and not exists (
      select 1 from pg_catalog.jsonb_array_elements(p_capabilities) as e(kind)
      where pg_catalog.jsonb_typeof(e.kind) <> 'string'
         or not ((e.kind #>> '{}') = any (botmox.agent_command_kinds()))
    )
    and (select count(distinct e.kind) from pg_catalog.jsonb_array_elements(p_capabilities) as e(kind))
        = pg_catalog.jsonb_array_length(p_capabilities),
    false)
$$;

comment on function botmox.agent_capabilities_valid(jsonb) is
  'True for a JSON array of distinct allowlisted command kinds.';

-- ------------------------------------------------------------------------------------------------
-- Tables

create table public.agent_pairings (
  id uuid primary key default gen_random_uuid(),
  tenant_id text not null
    constraint agent_pairings_tenant_id_check check (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  -- SHA-256 of the code the API generated and showed once; unique, so a code names one pairing.
  code_hash bytea not null
    constraint agent_pairings_code_hash_key unique
    constraint agent_pairings_code_hash_check check (octet_length(code_hash) = 32),
  created_by text not null
    constraint agent_pairings_created_by_check check (created_by <> ''),
  created_at timestamptz not null default now(),
  -- Always created_at + 10 minutes (the function sets it; the check keeps direct writes honest).
  expires_at timestamptz not null,
  consumed_at timestamptz,
  constraint agent_pairings_tenant_id_id_key unique (tenant_id, id),
  constraint agent_pairings_expiry_check check (expires_at = created_at + interval '10 minutes'),
  constraint agent_pairings_consumed_check check (consumed_at is null or consumed_at >= created_at)
);

comment on table public.agent_pairings is
  'One-time agent pairing codes (SHA-256 only), 10 minutes, single use (docs/contracts/agents-sql.md).';

create table public.agents (
  id uuid primary key default gen_random_uuid(),
  tenant_id text not null
    constraint agents_tenant_id_check check (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  -- The pairing that created the agent: one agent per pairing, in the pairing's tenant.
  pairing_id uuid not null,
  name text not null
    constraint agents_name_check check (char_length(name) between 1 and 100),
  version text not null
    constraint agents_version_check check (char_length(version) between 1 and 64),
  capabilities jsonb not null default '[]'::jsonb
    constraint agents_capabilities_check check (botmox.agent_capabilities_valid(capabilities)),
  -- SHA-256 of the credential returned once at registration.
  credential_hash bytea not null
    constraint agents_credential_hash_check check (octet_length(credential_hash) = 32),
  created_by text not null,
  created_at timestamptz not null default now(),
  last_seen_at timestamptz,
  -- The tunnel holding the agent: an id the API generates per connection, so a late "disconnected"
  -- from an old connection never marks a reconnected agent offline.
  connection_id uuid,
  connected_at timestamptz,
  revoked_at timestamptz,
  revoked_by text,
  constraint agents_tenant_id_id_key unique (tenant_id, id),
  constraint agents_pairing_key unique (tenant_id, pairing_id),
  constraint agents_pairing_fkey foreign key (tenant_id, pairing_id)
    references public.agent_pairings (tenant_id, id),
  constraint agents_connection_check check ((connection_id is null) = (connected_at is null)),
  constraint agents_revoked_check check ((revoked_at is null) = (revoked_by is null)),
  constraint agents_revoked_offline_check check (revoked_at is null or connection_id is null)
);

comment on table public.agents is
  'Paired customer agents; the credential as SHA-256 only (docs/contracts/agents-sql.md).';

create table public.agent_commands (
  id uuid primary key default gen_random_uuid(),
  tenant_id text not null,
  agent_id uuid not null,
  kind text not null
    constraint agent_commands_kind_check check (kind = any (botmox.agent_command_kinds())),
  params jsonb not null default '{}'::jsonb
    constraint agent_commands_params_check
      check (jsonb_typeof(params) = 'object' and octet_length(params::text) <= 16384),
  status text not null default 'queued'
    constraint agent_commands_status_check check (status in
      ('queued', 'sent', 'acked', 'running', 'succeeded', 'failed', 'expired', 'cancelled')),
  deadline timestamptz not null,
  deliveries integer not null default 0
    constraint agent_commands_deliveries_check check (deliveries >= 0),
  progress jsonb
    constraint agent_commands_progress_check
      check (progress is null or (jsonb_typeof(progress) = 'object' and octet_length(progress::text) <= 4096)),
  result_data jsonb
    constraint agent_commands_result_data_check check (result_data is null or octet_length(result_data::text) <= 262144),
  error_code text
    constraint agent_commands_error_code_check check (error_code ~ '^[A-Z][A-Z0-9_]{0,63}$'),
  error_message text
    constraint agent_commands_error_message_check check (char_length(error_message) <= 2000),
  created_by text not null
    constraint agent_commands_created_by_check check (created_by <> ''),
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  acked_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  -- The command's tenant is its agent's tenant, whatever wrote the row.
  constraint agent_commands_agent_fkey foreign key (tenant_id, agent_id)
    references public.agents (tenant_id, id),
  constraint agent_commands_deadline_check check (deadline > created_at),
  -- A result is ok+data (succeeded) or an error code+message (failed), never both, only when terminal.
  constraint agent_commands_result_check check (
    case status
      when 'succeeded' then error_code is null and error_message is null and finished_at is not null
      when 'failed' then result_data is null and error_code is not null and error_message is not null
        and finished_at is not null
      when 'expired' then result_data is null and finished_at is not null
      when 'cancelled' then result_data is null and finished_at is not null
      else result_data is null and error_code is null and error_message is null and finished_at is null
    end)
);

comment on table public.agent_commands is
  'Commands for agents and their outcome; status machine enforced by a trigger (docs/contracts/agents-sql.md).';

-- Both secondary indexes end with the primary key, so they are unique by construction and say so:
-- their keys are the exact orders the functions read in (created_at, id and deadline, id), and the
-- advisors' unused_index lint, which cannot tell a new index from a useless one, skips unique ones.
-- The agent's commands by age (re-send after a reconnect); leads with the foreign key's columns.
create unique index agent_commands_agent_idx on public.agent_commands (tenant_id, agent_id, created_at, id);
-- The expiry sweep: only open commands, by deadline.
create unique index agent_commands_open_deadline_idx on public.agent_commands (deadline, id)
  where status in ('queued', 'sent', 'acked', 'running');

-- ------------------------------------------------------------------------------------------------
-- The status machine, one home: every UPDATE of a command passes this trigger, whoever writes.
--   queued  -> sent | acked | succeeded | failed | expired | cancelled
--   sent    -> sent (re-delivery) | acked | succeeded | failed | expired | cancelled
--   acked   -> running | succeeded | failed | expired | cancelled
--   running -> running (progress) | succeeded | failed | expired | cancelled
--   succeeded, failed, expired, cancelled: terminal, nothing changes any more.
-- A result may skip the ack (the ack frame may have been lost with a connection), never progress.
-- What the command IS (tenant, agent, kind, params, deadline, author, creation) never changes.

create function botmox.agent_commands_transition()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  -- Transaction time, as the functions' deadline checks use: each API call is its own transaction,
  -- and a result accepted before the deadline is then never stamped after it.
  v_now timestamptz := pg_catalog.now();
begin
  if (new.id, new.tenant_id, new.agent_id, new.kind, new.params, new.deadline, new.created_by, new.created_at)
     is distinct from
     (old.id, old.tenant_id, old.agent_id, old.kind, old.params, old.deadline, old.created_by, old.created_at)
  then
    raise exception using
      errcode = 'BM409',
      message = 'command status transition refused',
      detail = 'status=' || old.status || ',to=' || new.status || ',immutable columns changed',
      hint = 'Only status, progress and the result of a command change.';
  end if;
  if not (
    (old.status = 'queued' and new.status in ('sent', 'acked', 'succeeded', 'failed', 'expired', 'cancelled'))
    or (old.status = 'sent' and new.status in ('sent', 'acked', 'succeeded', 'failed', 'expired', 'cancelled'))
    or (old.status = 'acked' and new.status in ('running', 'succeeded', 'failed', 'expired', 'cancelled'))
    or (old.status = 'running' and new.status in ('running', 'succeeded', 'failed', 'expired', 'cancelled'))
  ) then
    raise exception using
      errcode = 'BM409',
      message = 'command status transition refused',
      detail = 'status=' || old.status || ',to=' || new.status,
      hint = 'See the status machine in docs/contracts/agents-sql.md.';
  end if;
  if new.status = 'sent' then
    new.sent_at := v_now;
    new.deliveries := old.deliveries + 1;
  else
    new.deliveries := old.deliveries;
    new.sent_at := old.sent_at;
  end if;
  if new.status = 'acked' then
    new.acked_at := v_now;
  else
    new.acked_at := old.acked_at;
  end if;
  if new.status in ('succeeded', 'failed', 'expired', 'cancelled') then
    new.finished_at := v_now;
  end if;
  new.updated_at := v_now;
  return new;
end
$$;

create trigger agent_commands_transition
  before update on public.agent_commands
  for each row execute function botmox.agent_commands_transition();

-- No deletes through any role the API or PostgREST has: the tables are the audit trail.

-- ------------------------------------------------------------------------------------------------
-- Row-level security. One permissive policy per role and command (advisors:
-- multiple_permissive_policies); the tenant lookup in a sub-select (advisors: auth_rls_initplan).

alter table public.agent_pairings enable row level security;
alter table public.agent_pairings force row level security;
alter table public.agents enable row level security;
alter table public.agents force row level security;
alter table public.agent_commands enable row level security;
alter table public.agent_commands force row level security;

create policy agent_pairings_tenant_select on public.agent_pairings
  for select to authenticated, botmox_api, botmox_agent_writer
  using (tenant_id = (select botmox.request_tenant_id()));
create policy agent_pairings_tenant_insert on public.agent_pairings
  for insert to botmox_agent_writer
  with check (tenant_id = (select botmox.request_tenant_id()));
create policy agent_pairings_link_select on public.agent_pairings
  for select to botmox_agent_link
  using (true);
create policy agent_pairings_link_update on public.agent_pairings
  for update to botmox_agent_link
  using (true)
  with check (true);

create policy agents_tenant_select on public.agents
  for select to authenticated, botmox_api, botmox_agent_writer
  using (tenant_id = (select botmox.request_tenant_id()));
create policy agents_tenant_update on public.agents
  for update to botmox_agent_writer
  using (tenant_id = (select botmox.request_tenant_id()))
  with check (tenant_id = (select botmox.request_tenant_id()));
create policy agents_link_select on public.agents
  for select to botmox_agent_link
  using (true);
create policy agents_link_insert on public.agents
  for insert to botmox_agent_link
  with check (true);
create policy agents_link_update on public.agents
  for update to botmox_agent_link
  using (true)
  with check (true);

create policy agent_commands_tenant_select on public.agent_commands
  for select to authenticated, botmox_api, botmox_agent_writer
  using (tenant_id = (select botmox.request_tenant_id()));
create policy agent_commands_tenant_insert on public.agent_commands
  for insert to botmox_agent_writer
  with check (tenant_id = (select botmox.request_tenant_id()));
create policy agent_commands_tenant_update on public.agent_commands
  for update to botmox_agent_writer
  using (tenant_id = (select botmox.request_tenant_id()))
  with check (tenant_id = (select botmox.request_tenant_id()));
create policy agent_commands_link_select on public.agent_commands
  for select to botmox_agent_link
  using (true);
create policy agent_commands_link_update on public.agent_commands
  for update to botmox_agent_link
  using (true)
  with check (true);

-- Supabase's default privileges grant ALL on new tables in public to anon, authenticated and
-- service_role: start from nothing. Readers get every column but the digests and the connection id
-- (api_agent_disconnected takes it without a credential: it stays the API's own).
revoke all on table public.agent_pairings, public.agents, public.agent_commands
  from public, anon, authenticated, service_role, botmox_api;

grant select (id, tenant_id, created_by, created_at, expires_at, consumed_at)
  on table public.agent_pairings to authenticated, botmox_api;
grant select (id, tenant_id, pairing_id, name, version, capabilities, created_by, created_at, last_seen_at,
              connected_at, revoked_at, revoked_by)
  on table public.agents to authenticated, botmox_api;
grant select on table public.agent_commands to authenticated, botmox_api;

grant select, insert on table public.agent_pairings to botmox_agent_writer;
grant select, update on table public.agents to botmox_agent_writer;
grant select, insert, update on table public.agent_commands to botmox_agent_writer;

grant select, update on table public.agent_pairings to botmox_agent_link;
grant select, insert, update on table public.agents to botmox_agent_link;
grant select, update on table public.agent_commands to botmox_agent_link;

grant select, insert, update, delete on table public.agent_pairings, public.agents, public.agent_commands
  to service_role;

-- ------------------------------------------------------------------------------------------------
-- Shared helpers (private; owned by the migration owner, executable by the definer roles only)

-- Declares the caller's claims for the rest of the statement's transaction and returns the tenant
-- and the subject, refusing claims without either (42501), as storage policies do.
create function botmox.agent_declare_caller(p_claims text, out tenant_id text, out subject text)
language plpgsql
volatile
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('request.jwt.claims', coalesce(p_claims, ''), true);
  tenant_id := botmox.request_tenant_id();
  subject := botmox.request_subject();
  if tenant_id is null then
    raise exception using
      errcode = '42501',
      message = 'agent call without a tenant',
      detail = 'request.jwt.claims has no app_metadata.tenant_id';
  end if;
  if subject is null then
    raise exception using
      errcode = '42501',
      message = 'agent call without a caller',
      detail = 'request.jwt.claims has no sub';
  end if;
end
$$;

-- A digest as the functions accept it: exactly 32 bytes (SHA-256).
create function botmox.agent_require_digest(p_digest bytea, p_what text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_digest is null or pg_catalog.octet_length(p_digest) <> 32 then
    raise exception using
      errcode = '22023',
      message = p_what || ' must be a SHA-256 digest (32 bytes)';
  end if;
end
$$;

-- The agent a credential digest names, locked for the caller's update; BM403 otherwise. One
-- refusal for an unknown agent, a wrong credential and a revoked agent: nothing is revealed.
create function botmox.agent_authenticate(p_agent_id uuid, p_credential_hash bytea)
returns public.agents
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_agent public.agents;
begin
  perform botmox.agent_require_digest(p_credential_hash, 'credential hash');
  select * into v_agent
  from public.agents
  where id = p_agent_id and credential_hash = p_credential_hash and revoked_at is null
  for no key update;
  if not found then
    raise exception using
      errcode = 'BM403',
      message = 'agent credential refused',
      detail = 'unknown agent, wrong credential or revoked agent';
  end if;
  return v_agent;
end
$$;

-- The command of an authenticated agent, locked; BM404 when the id is unknown or another agent's.
create function botmox.agent_command_of(p_agent public.agents, p_command_id uuid)
returns public.agent_commands
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_command public.agent_commands;
begin
  select * into v_command
  from public.agent_commands
  where id = p_command_id and agent_id = p_agent.id and tenant_id = p_agent.tenant_id
  for update;
  if not found then
    raise exception using
      errcode = 'BM404',
      message = 'command not found',
      detail = 'no such command for this agent';
  end if;
  return v_command;
end
$$;

-- A refused transition with the status it was refused from, raised before any write so that the
-- caller's message is precise (the trigger is the backstop for every other writer).
create function botmox.agent_command_refuse(p_command public.agent_commands, p_to text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'BM409',
    message = 'command status transition refused',
    detail = 'status=' || p_command.status || ',to=' || p_to,
    hint = 'See the status machine in docs/contracts/agents-sql.md.';
end
$$;

-- The deadline is part of every transition the agent makes: past it, only the sweep (expired) or a
-- cancel may close the command.
create function botmox.agent_command_open_for_agent(p_command public.agent_commands, p_to text, p_from text[])
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if not (p_command.status = any (p_from)) then
    perform botmox.agent_command_refuse(p_command, p_to);
  end if;
  if p_command.deadline <= pg_catalog.now() then
    raise exception using
      errcode = 'BM409',
      message = 'command status transition refused',
      detail = 'status=' || p_command.status || ',to=' || p_to || ',deadline passed',
      hint = 'The command expired; its outcome is no longer accepted.';
  end if;
end
$$;

create function botmox.agent_notify(p_event text, p_agent_id uuid, p_command_id uuid)
returns void
language sql
volatile
set search_path = ''
as $$
  select pg_catalog.pg_notify('botmox_agent_commands', pg_catalog.json_build_object(
    'event', p_event, 'agent_id', p_agent_id, 'command_id', p_command_id)::text)
$$;

-- ------------------------------------------------------------------------------------------------
-- The tenant's calls (claims first). Reads: SECURITY INVOKER, row-level security as botmox_api.
-- Writes: SECURITY DEFINER as botmox_agent_writer, under the same tenant policies.

create function botmox.api_agent_pairing_create(p_claims text, p_code_hash bytea)
returns table (pairing_id uuid, tenant_id text, created_by text, created_at timestamptz, expires_at timestamptz)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_caller record;
  v_now timestamptz := pg_catalog.now();
begin
  select * into strict v_caller from botmox.agent_declare_caller(p_claims);
  perform botmox.agent_require_digest(p_code_hash, 'pairing code hash');
  return query
    insert into public.agent_pairings as p (tenant_id, code_hash, created_by, created_at, expires_at)
    values (v_caller.tenant_id, p_code_hash, v_caller.subject, v_now, v_now + interval '10 minutes')
    returning p.id, p.tenant_id, p.created_by, p.created_at, p.expires_at;
end
$$;

create function botmox.api_agents_list(p_claims text, p_online_within_s integer)
returns table (
  agent_id uuid, name text, version text, capabilities jsonb, created_by text, created_at timestamptz,
  last_seen_at timestamptz, revoked_at timestamptz, online boolean)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('request.jwt.claims', coalesce(p_claims, ''), true);
  return query
    select a.id, a.name, a.version, a.capabilities, a.created_by, a.created_at, a.last_seen_at, a.revoked_at,
      -- connected_at, not connection_id (not granted): agents_connection_check sets both or neither.
      a.connected_at is not null and a.revoked_at is null
        and a.last_seen_at >= pg_catalog.now() - pg_catalog.make_interval(secs => greatest(p_online_within_s, 0))
    from public.agents as a
    order by a.created_at, a.id;
end
$$;

create function botmox.api_agent_revoke(p_claims text, p_agent_id uuid)
returns table (agent_id uuid, revoked_at timestamptz, revoked_by text, cancelled_commands integer)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_caller record;
  v_agent public.agents;
  v_cancelled integer := 0;
begin
  select * into strict v_caller from botmox.agent_declare_caller(p_claims);
  select * into v_agent from public.agents as a
  where a.id = p_agent_id and a.tenant_id = v_caller.tenant_id
  for no key update;
  if not found then
    raise exception using errcode = 'BM404', message = 'agent not found', detail = 'no such agent in this tenant';
  end if;
  -- Revoking twice is not an error: the first revocation stands, with its time and author.
  if v_agent.revoked_at is null then
    update public.agents as a
    set revoked_at = pg_catalog.now(), revoked_by = v_caller.subject, connection_id = null, connected_at = null
    where a.id = v_agent.id
    returning * into v_agent;
    -- Nothing stays open for an agent that can never connect again.
    update public.agent_commands as c
    set status = 'cancelled', error_code = 'AGENT_REVOKED', error_message = 'the agent was revoked'
    where c.tenant_id = v_agent.tenant_id and c.agent_id = v_agent.id
      and c.status in ('queued', 'sent', 'acked', 'running');
    get diagnostics v_cancelled = row_count;
    perform botmox.agent_notify('revoked', v_agent.id, null);
  end if;
  return query select v_agent.id, v_agent.revoked_at, v_agent.revoked_by, v_cancelled;
end
$$;

create function botmox.api_agent_command_enqueue(
  p_claims text,
  p_agent_id uuid,
  p_kind text,
  p_params jsonb,
  p_deadline_s integer,
  p_online_within_s integer
)
returns setof public.agent_commands
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_caller record;
  v_agent public.agents;
  v_command public.agent_commands;
begin
  select * into strict v_caller from botmox.agent_declare_caller(p_claims);
  -- FOR SHARE: a concurrent revoke (FOR NO KEY UPDATE) either waits for this insert and then cancels
  -- the new command, or commits first and this re-reads the row as revoked.
  select * into v_agent from public.agents as a
  where a.id = p_agent_id and a.tenant_id = v_caller.tenant_id
  for share;
  if not found then
    raise exception using errcode = 'BM404', message = 'agent not found', detail = 'no such agent in this tenant';
  end if;
  if v_agent.revoked_at is not null then
    raise exception using errcode = 'BM410', message = 'agent revoked';
  end if;
  if p_kind is null or not (p_kind = any (botmox.agent_command_kinds())) then
    raise exception using errcode = 'BM422', message = 'unknown command kind', detail = 'kind=' || coalesce(p_kind, 'null');
  end if;
  if not (v_agent.capabilities ? p_kind) then
    raise exception using
      errcode = 'BM422', message = 'command kind not among the agent''s capabilities', detail = 'kind=' || p_kind;
  end if;
  if p_params is null or pg_catalog.jsonb_typeof(p_params) <> 'object'
     or pg_catalog.octet_length(p_params::text) > 16384 then
    raise exception using errcode = 'BM422', message = 'command params must be a JSON object of at most 16 KiB';
  end if;
  if p_deadline_s is null or p_deadline_s not between 1 and 86400 then
    raise exception using errcode = 'BM422', message = 'command deadline must be 1 to 86400 seconds away';
  end if;
  -- Online: a tunnel holds the agent (any worker's) and it was seen within the API's window (its
  -- heartbeat period plus slack). Checked last: a bad request is a bad request, online or not.
  if v_agent.connection_id is null
     or v_agent.last_seen_at < pg_catalog.now() - pg_catalog.make_interval(secs => greatest(p_online_within_s, 0))
  then
    raise exception using
      errcode = 'BM503',
      message = 'agent offline',
      detail = 'last_seen_at=' || coalesce(v_agent.last_seen_at::text, 'never');
  end if;
  insert into public.agent_commands as c (tenant_id, agent_id, kind, params, deadline, created_by)
  values (v_agent.tenant_id, v_agent.id, p_kind, p_params,
          pg_catalog.now() + pg_catalog.make_interval(secs => p_deadline_s), v_caller.subject)
  returning * into v_command;
  perform botmox.agent_notify('command', v_agent.id, v_command.id);
  return next v_command;
end
$$;

create function botmox.api_agent_command_read(p_claims text, p_agent_id uuid, p_command_id uuid)
returns setof public.agent_commands
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('request.jwt.claims', coalesce(p_claims, ''), true);
  return query select * from public.agent_commands as c where c.id = p_command_id and c.agent_id = p_agent_id;
end
$$;

create function botmox.api_agent_command_cancel(p_claims text, p_agent_id uuid, p_command_id uuid)
returns setof public.agent_commands
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_caller record;
  v_command public.agent_commands;
begin
  select * into strict v_caller from botmox.agent_declare_caller(p_claims);
  select * into v_command from public.agent_commands as c
  where c.id = p_command_id and c.agent_id = p_agent_id and c.tenant_id = v_caller.tenant_id
  for update;
  if not found then
    raise exception using errcode = 'BM404', message = 'command not found', detail = 'no such command in this tenant';
  end if;
  if v_command.status in ('succeeded', 'failed', 'expired', 'cancelled') then
    perform botmox.agent_command_refuse(v_command, 'cancelled');
  end if;
  update public.agent_commands as c
  set status = 'cancelled', error_code = 'CANCELLED', error_message = 'cancelled by ' || v_caller.subject
  where c.id = v_command.id
  returning * into v_command;
  perform botmox.agent_notify('cancelled', v_command.agent_id, v_command.id);
  return next v_command;
end
$$;

-- ------------------------------------------------------------------------------------------------
-- The agent's calls (no claims: the agent is its id + credential digest). SECURITY DEFINER as
-- botmox_agent_link; each authenticates first and touches that agent's rows only.

create function botmox.api_agent_register(
  p_code_hash bytea,
  p_credential_hash bytea,
  p_name text,
  p_version text,
  p_capabilities jsonb
)
returns table (
  agent_id uuid, tenant_id text, name text, version text, capabilities jsonb, created_by text,
  created_at timestamptz)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_pairing public.agent_pairings;
  v_agent public.agents;
begin
  perform botmox.agent_require_digest(p_code_hash, 'pairing code hash');
  perform botmox.agent_require_digest(p_credential_hash, 'credential hash');
  if not botmox.agent_capabilities_valid(p_capabilities) then
    raise exception using
      errcode = 'BM422',
      message = 'capabilities must be a JSON array of distinct allowlisted command kinds';
  end if;
  -- The consumption is the race: under READ COMMITTED a second UPDATE of the same row waits for the
  -- first and re-checks consumed_at on the committed row, so exactly one registration wins.
  update public.agent_pairings as p
  set consumed_at = pg_catalog.now()
  where p.code_hash = p_code_hash and p.consumed_at is null and p.expires_at > pg_catalog.now()
  returning * into v_pairing;
  if not found then
    raise exception using
      errcode = 'BM401',
      message = 'agent pairing code refused',
      detail = 'unknown, expired or already used';
  end if;
  -- Validation by the table's checks (name, version): a failure rolls the consumption back.
  insert into public.agents as a (tenant_id, pairing_id, name, version, capabilities, credential_hash, created_by)
  values (v_pairing.tenant_id, v_pairing.id, p_name, p_version, p_capabilities, p_credential_hash,
          v_pairing.created_by)
  returning * into v_agent;
  return query select v_agent.id, v_agent.tenant_id, v_agent.name, v_agent.version, v_agent.capabilities,
    v_agent.created_by, v_agent.created_at;
end
$$;

create function botmox.api_agent_connect(
  p_agent_id uuid,
  p_credential_hash bytea,
  p_connection_id uuid,
  p_version text,
  p_capabilities jsonb
)
returns table (agent_id uuid, tenant_id text, name text, version text, capabilities jsonb, last_seen_at timestamptz)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_agent public.agents := botmox.agent_authenticate(p_agent_id, p_credential_hash);
begin
  if p_connection_id is null then
    raise exception using errcode = '22023', message = 'connection id required';
  end if;
  if p_capabilities is not null and not botmox.agent_capabilities_valid(p_capabilities) then
    raise exception using
      errcode = 'BM422',
      message = 'capabilities must be a JSON array of distinct allowlisted command kinds';
  end if;
  update public.agents as a
  set connection_id = p_connection_id,
      connected_at = pg_catalog.now(),
      last_seen_at = pg_catalog.now(),
      version = coalesce(p_version, a.version),
      capabilities = coalesce(p_capabilities, a.capabilities)
  where a.id = v_agent.id
  returning * into v_agent;
  return query select v_agent.id, v_agent.tenant_id, v_agent.name, v_agent.version, v_agent.capabilities,
    v_agent.last_seen_at;
end
$$;

create function botmox.api_agent_heartbeat(p_agent_id uuid, p_credential_hash bytea, p_connection_id uuid)
returns timestamptz
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_agent public.agents := botmox.agent_authenticate(p_agent_id, p_credential_hash);
begin
  -- Another connection took over (the agent reconnected through another worker): this one is stale.
  if v_agent.connection_id is distinct from p_connection_id then
    raise exception using
      errcode = 'BM403',
      message = 'agent connection superseded',
      detail = 'the agent is connected through another connection';
  end if;
  update public.agents as a set last_seen_at = pg_catalog.now() where a.id = v_agent.id
  returning a.last_seen_at into v_agent.last_seen_at;
  return v_agent.last_seen_at;
end
$$;

-- No credential: a revoked agent's connection must still be closed. The connection id is the API's
-- own unguessable value, so only the API's tunnel that holds the connection can end it.
create function botmox.api_agent_disconnected(p_agent_id uuid, p_connection_id uuid)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  update public.agents as a set connection_id = null, connected_at = null
  where a.id = p_agent_id and a.connection_id = p_connection_id;
  get diagnostics v_count = row_count;
  return v_count = 1;
end
$$;

-- The commands to (re)send: not acknowledged yet and still within their deadline, oldest first.
create function botmox.api_agent_commands_pending(p_agent_id uuid, p_credential_hash bytea)
returns setof public.agent_commands
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_agent public.agents := botmox.agent_authenticate(p_agent_id, p_credential_hash);
begin
  return query
    select * from public.agent_commands as c
    where c.tenant_id = v_agent.tenant_id and c.agent_id = v_agent.id
      and c.status in ('queued', 'sent') and c.deadline > pg_catalog.now()
    order by c.created_at, c.id;
end
$$;

create function botmox.api_agent_command_sent(p_agent_id uuid, p_credential_hash bytea, p_command_id uuid)
returns setof public.agent_commands
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_agent public.agents := botmox.agent_authenticate(p_agent_id, p_credential_hash);
  v_command public.agent_commands := botmox.agent_command_of(v_agent, p_command_id);
begin
  perform botmox.agent_command_open_for_agent(v_command, 'sent', array['queued', 'sent']);
  return query update public.agent_commands as c set status = 'sent' where c.id = v_command.id returning *;
end
$$;

create function botmox.api_agent_command_ack(p_agent_id uuid, p_credential_hash bytea, p_command_id uuid)
returns setof public.agent_commands
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_agent public.agents := botmox.agent_authenticate(p_agent_id, p_credential_hash);
  v_command public.agent_commands := botmox.agent_command_of(v_agent, p_command_id);
begin
  perform botmox.agent_command_open_for_agent(v_command, 'acked', array['queued', 'sent']);
  return query update public.agent_commands as c set status = 'acked' where c.id = v_command.id returning *;
end
$$;

create function botmox.api_agent_command_progress(
  p_agent_id uuid,
  p_credential_hash bytea,
  p_command_id uuid,
  p_progress jsonb
)
returns setof public.agent_commands
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_agent public.agents := botmox.agent_authenticate(p_agent_id, p_credential_hash);
  v_command public.agent_commands := botmox.agent_command_of(v_agent, p_command_id);
begin
  perform botmox.agent_command_open_for_agent(v_command, 'running', array['acked', 'running']);
  if p_progress is null or pg_catalog.jsonb_typeof(p_progress) <> 'object'
     or pg_catalog.octet_length(p_progress::text) > 4096 then
    raise exception using errcode = 'BM422', message = 'command progress must be a JSON object of at most 4 KiB';
  end if;
  return query
    update public.agent_commands as c set status = 'running', progress = p_progress
    where c.id = v_command.id returning *;
end
$$;

create function botmox.api_agent_command_result(
  p_agent_id uuid,
  p_credential_hash bytea,
  p_command_id uuid,
  p_ok boolean,
  p_data jsonb,
  p_error_code text,
  p_error_message text
)
returns setof public.agent_commands
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_agent public.agents := botmox.agent_authenticate(p_agent_id, p_credential_hash);
  v_command public.agent_commands := botmox.agent_command_of(v_agent, p_command_id);
  v_status text := case when p_ok then 'succeeded' else 'failed' end;
begin
  perform botmox.agent_command_open_for_agent(v_command, v_status, array['queued', 'sent', 'acked', 'running']);
  if p_ok is null
     or (p_ok and (p_error_code is not null or p_error_message is not null))
     or (not p_ok and (p_data is not null or p_error_code is null or p_error_message is null)) then
    raise exception using
      errcode = 'BM422',
      message = 'command result must be ok with data, or an error code and message';
  end if;
  return query
    update public.agent_commands as c
    set status = v_status, result_data = case when p_ok then coalesce(p_data, 'null'::jsonb) end,
        error_code = p_error_code, error_message = p_error_message
    where c.id = v_command.id returning *;
end
$$;

-- The sweep (any worker, periodically): open commands past their deadline become expired. Workers
-- sweeping at once skip each other's rows (SKIP LOCKED) instead of waiting.
create function botmox.api_agent_commands_expire(p_limit integer)
returns table (command_id uuid, agent_id uuid, tenant_id text)
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  return query
    with due as (
      select c.id from public.agent_commands as c
      where c.status in ('queued', 'sent', 'acked', 'running') and c.deadline <= pg_catalog.now()
      order by c.deadline, c.id
      limit greatest(p_limit, 0)
      for update skip locked
    )
    update public.agent_commands as c
    set status = 'expired', error_code = 'DEADLINE_EXCEEDED', error_message = 'the command''s deadline passed'
    from due where c.id = due.id
    returning c.id, c.agent_id, c.tenant_id;
end
$$;

-- ------------------------------------------------------------------------------------------------
-- Ownership and privileges. Functions are executable by PUBLIC by default: revoke everything, grant
-- exactly. Helpers: to the definer roles that call them. api_ functions: botmox_api only.

alter function botmox.api_agent_pairing_create(text, bytea) owner to botmox_agent_writer;
alter function botmox.api_agent_revoke(text, uuid) owner to botmox_agent_writer;
alter function botmox.api_agent_command_enqueue(text, uuid, text, jsonb, integer, integer) owner to botmox_agent_writer;
alter function botmox.api_agent_command_cancel(text, uuid, uuid) owner to botmox_agent_writer;

alter function botmox.api_agent_register(bytea, bytea, text, text, jsonb) owner to botmox_agent_link;
alter function botmox.api_agent_connect(uuid, bytea, uuid, text, jsonb) owner to botmox_agent_link;
alter function botmox.api_agent_heartbeat(uuid, bytea, uuid) owner to botmox_agent_link;
alter function botmox.api_agent_disconnected(uuid, uuid) owner to botmox_agent_link;
alter function botmox.api_agent_commands_pending(uuid, bytea) owner to botmox_agent_link;
alter function botmox.api_agent_command_sent(uuid, bytea, uuid) owner to botmox_agent_link;
alter function botmox.api_agent_command_ack(uuid, bytea, uuid) owner to botmox_agent_link;
alter function botmox.api_agent_command_progress(uuid, bytea, uuid, jsonb) owner to botmox_agent_link;
alter function botmox.api_agent_command_result(uuid, bytea, uuid, boolean, jsonb, text, text) owner to botmox_agent_link;
alter function botmox.api_agent_commands_expire(integer) owner to botmox_agent_link;

do $privileges$
declare
  v_function regprocedure;
begin
  for v_function in
    select p.oid::regprocedure
    from pg_catalog.pg_proc as p join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
    where n.nspname = 'botmox'
      and (p.proname like 'api\_agent%' or p.proname like 'agent\_%')
  loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', v_function);
  end loop;
end
$privileges$;

-- The table checks call these, for every writer (service_role's direct writes included).
grant execute on function botmox.agent_command_kinds() to authenticated, botmox_api, service_role,
  botmox_agent_writer, botmox_agent_link;
grant execute on function botmox.agent_capabilities_valid(jsonb) to authenticated, botmox_api, service_role,
  botmox_agent_writer, botmox_agent_link;

grant execute on function botmox.agent_declare_caller(text) to botmox_agent_writer;
grant execute on function botmox.agent_require_digest(bytea, text) to botmox_agent_writer, botmox_agent_link;
grant execute on function botmox.agent_authenticate(uuid, bytea) to botmox_agent_link;
grant execute on function botmox.agent_command_of(public.agents, uuid) to botmox_agent_link;
grant execute on function botmox.agent_command_refuse(public.agent_commands, text)
  to botmox_agent_writer, botmox_agent_link;
grant execute on function botmox.agent_command_open_for_agent(public.agent_commands, text, text[])
  to botmox_agent_link;
grant execute on function botmox.agent_notify(text, uuid, uuid) to botmox_agent_writer, botmox_agent_link;

grant execute on function botmox.api_agent_pairing_create(text, bytea) to botmox_api;
grant execute on function botmox.api_agents_list(text, integer) to botmox_api;
grant execute on function botmox.api_agent_revoke(text, uuid) to botmox_api;
grant execute on function botmox.api_agent_command_enqueue(text, uuid, text, jsonb, integer, integer) to botmox_api;
grant execute on function botmox.api_agent_command_read(text, uuid, uuid) to botmox_api;
grant execute on function botmox.api_agent_command_cancel(text, uuid, uuid) to botmox_api;
grant execute on function botmox.api_agent_register(bytea, bytea, text, text, jsonb) to botmox_api;
grant execute on function botmox.api_agent_connect(uuid, bytea, uuid, text, jsonb) to botmox_api;
grant execute on function botmox.api_agent_heartbeat(uuid, bytea, uuid) to botmox_api;
grant execute on function botmox.api_agent_disconnected(uuid, uuid) to botmox_api;
grant execute on function botmox.api_agent_commands_pending(uuid, bytea) to botmox_api;
grant execute on function botmox.api_agent_command_sent(uuid, bytea, uuid) to botmox_api;
grant execute on function botmox.api_agent_command_ack(uuid, bytea, uuid) to botmox_api;
grant execute on function botmox.api_agent_command_progress(uuid, bytea, uuid, jsonb) to botmox_api;
grant execute on function botmox.api_agent_command_result(uuid, bytea, uuid, boolean, jsonb, text, text)
  to botmox_api;
grant execute on function botmox.api_agent_commands_expire(integer) to botmox_api;
