"""The stack's database is made the way the tests' database is: same roles, grants and policies.

Both go through ``harness.postgres.migrated.migrate`` (platform baseline, ``supabase migration up``, the
API role's password); this compares the catalogs of the native stack's PostgreSQL component with a
``pg_database`` fixture database, so a step added to one and not the other shows up here.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from harness.postgres.migrated import API_ROLE, PgDatabase
from harness.stack.description import POSTGRES, STACK, StackDescription
from harness.stack.native import NativeRuntime
from harness.stack.state import HarnessPaths

pytestmark = pytest.mark.integration

CATALOGS = {
    "roles": """
        select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
               rolbypassrls, rolconnlimit, rolconfig
        from pg_catalog.pg_roles where rolname !~ '^pg_' order by rolname""",
    "role memberships": """
        select r.rolname, m.rolname, a.admin_option from pg_catalog.pg_auth_members a
        join pg_catalog.pg_roles r on r.oid = a.roleid join pg_catalog.pg_roles m on m.oid = a.member
        where r.rolname !~ '^pg_' order by 1, 2""",
    "table grants": """
        select grantor, grantee, table_schema, table_name, privilege_type, is_grantable
        from information_schema.role_table_grants
        where table_schema not in ('pg_catalog', 'information_schema', 'pg_toast')
        order by 1, 2, 3, 4, 5""",
    "function privileges": """
        select n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
               p.proacl::text, p.prosecdef, p.proconfig
        from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') order by 1, 2, 3""",
    "policies": """
        select schemaname, tablename, policyname, permissive, roles::text, cmd, qual, with_check
        from pg_catalog.pg_policies order by 1, 2, 3""",
    "row-level security": """
        select c.relnamespace::regnamespace::text, c.relname, c.relrowsecurity, c.relforcerowsecurity
        from pg_catalog.pg_class c where c.relkind in ('r', 'p')
        and c.relnamespace::regnamespace::text not in ('pg_catalog', 'information_schema', 'pg_toast')
        order by 1, 2""",
    "schema privileges": """
        select nspname, nspacl::text from pg_catalog.pg_namespace
        where nspname !~ '^pg_' and nspname <> 'information_schema' order by 1""",
    "default privileges": """
        select defaclrole::regrole::text, defaclnamespace::regnamespace::text, defaclobjtype, defaclacl::text
        from pg_catalog.pg_default_acl order by 1, 2, 3""",
    "migrations applied": "select version from supabase_migrations.schema_migrations order by 1",
}


def _catalogs(admin_dsn: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(admin_dsn) as connection:
        return {name: connection.execute(query).fetchall() for name, query in CATALOGS.items()}


def test_the_stack_database_has_the_roles_grants_and_policies_of_the_test_database(
    tmp_path: Path, pg_database: PgDatabase
) -> None:
    paths = HarnessPaths(tmp_path / "home")
    runtime = NativeRuntime(paths, description=StackDescription((POSTGRES,), migrations=STACK.migrations))
    state = runtime.up("supabase")
    try:
        stack = _catalogs(state.supabase_db_url)
        with psycopg.connect(state.supabase_api_db_url) as api:  # the API role's password is set
            assert api.execute("select current_user").fetchone() == (API_ROLE,)
    finally:
        runtime.down(state)
    tests = _catalogs(pg_database.admin_dsn)
    # Not an empty match: the platform baseline and the migrations both left their mark.
    roles = {row[0] for row in tests["roles"]}
    assert {"anon", "authenticated", "service_role", API_ROLE} <= roles
    assert tests["policies"]
    assert tests["default privileges"]
    for name in CATALOGS:
        assert stack[name] == tests[name], f"{name} differ between the stack and the test database"
