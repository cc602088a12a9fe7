-- Agent commands: re-delivery of acknowledged, unfinished commands after a reconnect.
--
-- docs/agent-protocol.md, rule 5: after a reconnect the server re-sends every command of the agent
-- that has no stored result, acknowledged or not, with the same id; the agent answers one it knows
-- from its journal (an ack, then its result, or the result when it finishes), and never runs it again.
-- The first agents migration listed only `queued` and `sent` commands as pending, and an acknowledged
-- command could not be marked sent again: a command whose result was lost with its connection stayed
-- `acked` (or `running`) until the sweep expired it, although the agent's journal held its outcome.
--
-- Now:
-- - `api_agent_commands_pending` lists `queued`, `sent`, `acked` and `running` commands within their
--   deadline;
-- - `api_agent_command_sent` on an `acked` or `running` command counts the delivery (`deliveries + 1`,
--   `sent_at` stamped) and keeps its status and progress: the agent's ack of a re-sent command is not
--   stored again (the API does not call `api_agent_command_ack` for a command it re-sent in `acked` or
--   `running`), and its progress and result move the command on as before;
-- - the status machine accepts that re-delivery, `acked -> acked` and `running -> running`, only as
--   `deliveries + 1`; a second ack is still refused (`BM409 status=acked,to=acked`).
--
-- Contract: docs/contracts/agents-sql.md. Replaces three functions in place (same signatures, owners
-- and grants); no table changes.

-- ------------------------------------------------------------------------------------------------
-- The status machine, one home: every UPDATE of a command passes this trigger, whoever writes.
--   queued  -> sent | acked | succeeded | failed | expired | cancelled
--   sent    -> sent (re-delivery) | acked | succeeded | failed | expired | cancelled
--   acked   -> acked (re-delivery) | running | succeeded | failed | expired | cancelled
--   running -> running (progress, or re-delivery) | succeeded | failed | expired | cancelled
--   succeeded, failed, expired, cancelled: terminal, nothing changes any more.
-- A re-delivery of an acked or running command is the update that adds one to `deliveries` and
-- changes nothing else that the caller controls.
create or replace function botmox.agent_commands_transition()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := pg_catalog.now();
  v_redelivery boolean := new.status = old.status and old.status in ('acked', 'running')
    and new.deliveries = old.deliveries + 1
    and new.progress is not distinct from old.progress;
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
    or (old.status = 'acked' and (v_redelivery
        or new.status in ('running', 'succeeded', 'failed', 'expired', 'cancelled')))
    or (old.status = 'running' and new.status in ('running', 'succeeded', 'failed', 'expired', 'cancelled'))
  ) then
    raise exception using
      errcode = 'BM409',
      message = 'command status transition refused',
      detail = 'status=' || old.status || ',to=' || new.status,
      hint = 'See the status machine in docs/contracts/agents-sql.md.';
  end if;
  if new.status = 'sent' or v_redelivery then
    new.sent_at := v_now;
    new.deliveries := old.deliveries + 1;
  else
    new.deliveries := old.deliveries;
    new.sent_at := old.sent_at;
  end if;
  if new.status = 'acked' and not v_redelivery then
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

-- The commands to (re)send: without a stored result and still within their deadline, oldest first.
create or replace function botmox.api_agent_commands_pending(p_agent_id uuid, p_credential_hash bytea)
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
      and c.status in ('queued', 'sent', 'acked', 'running') and c.deadline > pg_catalog.now()
    order by c.created_at, c.id;
end
$$;

-- Mark a delivery: `queued` and `sent` become `sent`; `acked` and `running` keep their status (the
-- agent already has the command) and count the delivery.
create or replace function botmox.api_agent_command_sent(p_agent_id uuid, p_credential_hash bytea, p_command_id uuid)
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
  perform botmox.agent_command_open_for_agent(v_command, 'sent', array['queued', 'sent', 'acked', 'running']);
  if v_command.status in ('acked', 'running') then
    return query update public.agent_commands as c set deliveries = c.deliveries + 1
      where c.id = v_command.id returning *;
  else
    return query update public.agent_commands as c set status = 'sent' where c.id = v_command.id returning *;
  end if;
end
$$;
