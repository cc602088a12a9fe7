-- Storage policies: one statement per API call.
--
-- The API's direct connection used to run every call as an explicit transaction: BEGIN, declare the
-- caller (set_config('request.jwt.claims', ..., true)), call the function, COMMIT; several round
-- trips each. These functions take the claims as their first parameter, declare them and call the
-- public function, so a call is a single statement (its own transaction) and a single round trip:
-- - SECURITY INVOKER: the public functions and row-level security run as the caller (botmox_api),
--   exactly as before; nothing here bypasses a rule of the first two migrations.
-- - The claims are set local to the transaction (the statement's own): they end with it, so a
--   pooled connection never carries them into its next statement.
-- - EXECUTE only for botmox_api. A role that may declare its own claims must never be one a user's
--   token reaches (authenticated, anon through PostgREST), and the private schema botmox is not
--   exposed by PostgREST anyway.
--
-- Contract: docs/contracts/storage-policy-sql.md. Deploy this migration before an API that calls it.

create function botmox.api_storage_policy_read(p_claims text, p_tenant_id text)
returns setof public.storage_policies
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('request.jwt.claims', p_claims, true);
  return query select * from public.storage_policy_read(p_tenant_id => p_tenant_id);
end
$$;

create function botmox.api_storage_policy_replace(
  p_claims text,
  p_tenant_id text,
  p_operational text,
  p_sync_enabled boolean,
  p_if_match bigint[],
  p_if_exists boolean
)
returns setof public.storage_policies
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('request.jwt.claims', p_claims, true);
  return query select * from public.storage_policy_replace(
    p_tenant_id => p_tenant_id,
    p_operational => p_operational,
    p_sync_enabled => p_sync_enabled,
    p_if_match => p_if_match,
    p_if_exists => p_if_exists);
end
$$;

create function botmox.api_storage_policy_merge(
  p_claims text,
  p_tenant_id text,
  p_operational text,
  p_sync_enabled boolean,
  p_if_match bigint[],
  p_if_exists boolean
)
returns setof public.storage_policies
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('request.jwt.claims', p_claims, true);
  return query select * from public.storage_policy_merge(
    p_tenant_id => p_tenant_id,
    p_operational => p_operational,
    p_sync_enabled => p_sync_enabled,
    p_if_match => p_if_match,
    p_if_exists => p_if_exists);
end
$$;

comment on function botmox.api_storage_policy_read(text, text) is
  'The API''s read in one statement: declares p_claims as request.jwt.claims (local), then public.storage_policy_read.';
comment on function botmox.api_storage_policy_replace(text, text, text, boolean, bigint[], boolean) is
  'The API''s replace in one statement: declares p_claims as request.jwt.claims (local), then public.storage_policy_replace.';
comment on function botmox.api_storage_policy_merge(text, text, text, boolean, bigint[], boolean) is
  'The API''s merge in one statement: declares p_claims as request.jwt.claims (local), then public.storage_policy_merge.';

revoke all on function botmox.api_storage_policy_read(text, text)
  from public, anon, authenticated, service_role;
revoke all on function botmox.api_storage_policy_replace(text, text, text, boolean, bigint[], boolean)
  from public, anon, authenticated, service_role;
revoke all on function botmox.api_storage_policy_merge(text, text, text, boolean, bigint[], boolean)
  from public, anon, authenticated, service_role;

grant execute on function botmox.api_storage_policy_read(text, text) to botmox_api;
grant execute on function botmox.api_storage_policy_replace(text, text, text, boolean, bigint[], boolean)
  to botmox_api;
grant execute on function botmox.api_storage_policy_merge(text, text, text, boolean, bigint[], boolean)
  to botmox_api;
