"""Supabase's database without Supabase's containers: a throwaway PostgreSQL 15 made like the real one.

``cluster`` runs a private server (initdb, start, stop by PID); ``platform`` adds what a Supabase
project has before any migration; ``supabase`` runs the Supabase CLI and pg_prove against it;
``migrated`` is ``migrate()``, the one way a database is made (for the stack and the test fixtures),
and the migrated template the fixtures copy; ``postgrest`` answers RPC calls as PostgREST would.
"""
