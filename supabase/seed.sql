-- Local development data, loaded by `supabase db reset` after the migrations.
-- A demo tenant with the default storage policy (version 1).
insert into public.storage_policies (tenant_id, operational, sync_enabled, updated_by)
values ('demo', 'cloud', false, 'seed')
on conflict (tenant_id) do nothing;
