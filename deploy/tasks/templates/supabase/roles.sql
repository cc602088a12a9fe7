-- Managed by deploy/tasks/supabase.py: Supabase's service roles log in with POSTGRES_PASSWORD
-- (run once by the image when the database is created).
\set pgpass `echo "$POSTGRES_PASSWORD"`

alter user authenticator with password :'pgpass';
alter user pgbouncer with password :'pgpass';
alter user supabase_auth_admin with password :'pgpass';
alter user supabase_functions_admin with password :'pgpass';
alter user supabase_storage_admin with password :'pgpass';
