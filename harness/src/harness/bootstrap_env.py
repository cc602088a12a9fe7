"""``python -m harness env``: write ``services/api/.env`` from ``supabase status -o json``.

For machines that run the real Supabase CLI stack (``make supabase-start``). The API then talks to
that stack with ``DATA_BACKEND=supabase``. By default its direct database connection logs in as
``botmox_api`` (the role the migrations create, without a password): this command gives the role a
fresh random password through the administrator's ``DB_URL`` and writes the ``botmox_api`` URL, so
row-level security applies locally exactly as deployed. ``--db-user postgres`` writes ``DB_URL`` as
given instead (a superuser: row-level security is bypassed).

An existing env file is edited, not replaced: only the keys in ``MANAGED_KEYS`` change, every other
line and comment stays. It refuses (exit 2) without ``--force`` when the file looks like it targets
something other than a local stack (``APP_ENV=production``, or a non-loopback ``SUPABASE_URL``).
No value is ever printed; errors exit with code 2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from harness.postgres.supabase import find_supabase_cli

API_ROLE: Final = "botmox_api"
DEFAULT_ENV_FILE: Final = Path("services/api/.env")
STATUS_TIMEOUT_S: Final = 120.0
DB_CONNECT_TIMEOUT_S: Final = 10

# The keys this command owns in the env file, in the order it appends them.
MANAGED_KEYS: Final = (
    "APP_ENV",
    "DATA_BACKEND",
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_DB_URL",
    "SUPABASE_JWT_SECRET",
    "SUPABASE_JWT_AUDIENCE",
)
# Comment lines this command writes (and replaces on every run) start with this.
COMMENT_MARK: Final = "# bootstrap-env:"

# Names in `supabase status -o json`, first match wins. ANON_KEY is the classic JWT key; CLIs that
# also print the newer opaque keys (sb_publishable_...) call that one PUBLISHABLE_KEY. The API needs
# no service-role key (its REST transport mints per-call tokens with JWT_SECRET), so none is written.
STATUS_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    "api_url": ("API_URL",),
    "db_url": ("DB_URL",),
    "jwt_secret": ("JWT_SECRET",),
    "anon_key": ("ANON_KEY", "PUBLISHABLE_KEY"),
}
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_BARE_VALUE: Final = re.compile(r"^[A-Za-z0-9_./:@%+=?&,~-]*$")
_ASSIGNMENT: Final = re.compile(r"^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


class BootstrapError(Exception):
    """A failure the user can act on; its message is printed as is (it never holds a secret)."""


@dataclass(frozen=True)
class SupabaseStatus:
    api_url: str
    db_url: str
    jwt_secret: str
    anon_key: str


# --- reading the status -------------------------------------------------------------------------


def parse_status(text: str) -> SupabaseStatus:
    """The values the API needs from ``supabase status -o json`` output."""
    # Some CLI versions print a notice (e.g. "A new version is available") before the JSON.
    start = text.find("{")
    try:
        document: object = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError as error:
        raise BootstrapError(
            f"supabase status output is not JSON: {error.msg} (line {error.lineno})"
        ) from None
    if not isinstance(document, dict):
        raise BootstrapError("supabase status output is not a JSON object")
    found: dict[str, str] = {}
    for field, names in STATUS_NAMES.items():
        value = next((document[n] for n in names if isinstance(document.get(n), str) and document[n]), None)
        if value is None:
            raise BootstrapError(f"supabase status JSON lacks {' or '.join(names)}")
        found[field] = value
    return SupabaseStatus(**found)


def resolve_cli(explicit: Path | None) -> Path:
    try:
        # Run from the project root (`make bootstrap-env`): its pinned CLI is under the working dir.
        return find_supabase_cli(Path.cwd(), explicit)
    except FileNotFoundError as error:
        raise BootstrapError(str(error)) from None


def run_status(cli: Path) -> str:
    """stdout of ``supabase status -o json`` (it holds secrets: never echoed)."""
    env = {**os.environ, "SUPABASE_TELEMETRY_DISABLED": "1"}
    try:
        completed = subprocess.run(  # noqa: S603 - the CLI the user chose, fixed arguments
            [str(cli), "status", "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=STATUS_TIMEOUT_S,
            check=False,
        )
    except OSError as error:
        raise BootstrapError(f"cannot run the Supabase CLI {cli}: {error.strerror or error}") from None
    except subprocess.TimeoutExpired:
        raise BootstrapError(f"`supabase status` did not answer within {STATUS_TIMEOUT_S:.0f} s") from None
    if completed.returncode != 0:
        stderr = completed.stderr.strip() or "(no output on stderr)"
        raise BootstrapError(
            f"`supabase status -o json` failed (exit {completed.returncode}); is the stack running "
            f"(`make supabase-start`)?\n{stderr}"
        )
    return completed.stdout


# --- the API's database role --------------------------------------------------------------------


def scram_sha256_verifier(password: str, *, iterations: int = 4096) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677). Sending the verifier
    instead of the password keeps the plain password out of server logs (log_statement)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with its user and password replaced; host, port, database and query kept."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def set_role_password(admin_url: str, role: str, password: str) -> None:
    try:
        with psycopg.connect(admin_url, connect_timeout=DB_CONNECT_TIMEOUT_S, autocommit=True) as connection:
            exists = connection.execute(
                "select 1 from pg_catalog.pg_roles where rolname = %s", (role,)
            ).fetchone()
            if exists is None:
                raise BootstrapError(
                    f"role {role} does not exist in the database behind DB_URL: are the migrations applied "
                    "(`supabase migration up`)? Or pass --db-user postgres"
                )
            connection.execute(
                sql.SQL("alter role {} with login password {}").format(
                    sql.Identifier(role), sql.Literal(scram_sha256_verifier(password))
                )
            )
    except psycopg.Error as error:
        # The driver's message names host and port, never the password.
        summary = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BootstrapError(f"cannot set the {role} password through DB_URL: {summary}") from None


# --- the env file -------------------------------------------------------------------------------


def dotenv_value(value: str) -> str:
    """A value as python-dotenv (pydantic-settings) reads it back unchanged."""
    if _BARE_VALUE.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _read_value(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw.split(" #", 1)[0].strip()


def existing_values(lines: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in lines:
        match = _ASSIGNMENT.match(line)
        if match:
            values[match.group(2)] = _read_value(match.group(3))
    return values


def refuse_foreign_target(current: Mapping[str, str], new: Mapping[str, str]) -> None:
    """Keep a hand-written file that points at a real deployment from being bent to a local stack."""
    if current.get("APP_ENV", "").lower() == "production":
        raise BootstrapError(
            "the env file has APP_ENV=production; pass --force to point it at the local stack"
        )
    url = current.get("SUPABASE_URL", "")
    if url and url != new["SUPABASE_URL"] and urlsplit(url).hostname not in _LOOPBACK_HOSTS:
        raise BootstrapError(
            "the env file's SUPABASE_URL is not a local stack; pass --force to replace it with the local one"
        )


def merge_env(lines: Sequence[str], values: Mapping[str, str], comments: Sequence[str]) -> list[str]:
    """``lines`` with every managed assignment set to ``values``; missing keys appended. Our own
    comment lines are dropped and written afresh above the first managed key."""
    kept = [line for line in lines if not line.startswith(COMMENT_MARK)]
    out: list[str] = []
    seen: set[str] = set()
    for line in kept:
        match = _ASSIGNMENT.match(line)
        key = match.group(2) if match else None
        if match is not None and key in values and key is not None:
            if not seen:
                out.extend(comments)
            seen.add(key)
            out.append(f"{match.group(1)}{key}={dotenv_value(values[key])}")  # an `export ` prefix stays
        else:
            out.append(line)
    missing = [key for key in values if key not in seen]
    if missing:
        if out and out[-1].strip():
            out.append("")
        if not seen:
            out.extend(comments)
        out.extend(f"{key}={dotenv_value(values[key])}" for key in missing)
    return out


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically with mode 0600 (created so, never readable by others in between)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)  # the umask may have narrowed it; make it exact
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class EnvUpdate:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]


def update_env_file(
    path: Path, values: Mapping[str, str], comments: Sequence[str], *, force: bool
) -> EnvUpdate:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    current = existing_values(lines)
    if not force:
        refuse_foreign_target(current, values)
    write_private(path, "\n".join(merge_env(lines, values, comments)) + "\n")
    return EnvUpdate(
        added=tuple(k for k in values if k not in current),
        changed=tuple(k for k in values if k in current and current[k] != values[k]),
        unchanged=tuple(k for k in values if current.get(k) == values[k]),
    )


# --- the command --------------------------------------------------------------------------------


def api_values(status: SupabaseStatus, db_url: str) -> dict[str, str]:
    return {
        "APP_ENV": "development",
        "DATA_BACKEND": "supabase",
        "SUPABASE_URL": status.api_url,
        "SUPABASE_ANON_KEY": status.anon_key,
        "SUPABASE_DB_URL": db_url,
        "SUPABASE_JWT_SECRET": status.jwt_secret,
        "SUPABASE_JWT_AUDIENCE": "authenticated",
    }


def write_api_env(
    env_file: Path,
    *,
    status_json: Path | None = None,
    supabase_cli: Path | None = None,
    db_user: str = API_ROLE,
    force: bool = False,
) -> EnvUpdate:
    """Read the stack's status (``status_json``, else the CLI's), then write ``env_file``."""
    if status_json is not None:
        try:
            text = status_json.read_text(encoding="utf-8")
        except OSError as error:
            raise BootstrapError(f"cannot read {status_json}: {error.strerror or error}") from None
    else:
        text = run_status(resolve_cli(supabase_cli))
    status = parse_status(text)
    if db_user == API_ROLE:
        password = secrets.token_urlsafe(32)
        set_role_password(status.db_url, API_ROLE, password)
        db_url = with_credentials(status.db_url, API_ROLE, password)
        comments = [
            f"{COMMENT_MARK} written from `supabase status -o json`.",
            f"{COMMENT_MARK} SUPABASE_DB_URL logs in as {API_ROLE} (row-level security applies)",
            f"{COMMENT_MARK} with a random password this command set through the stack's DB_URL.",
        ]
    else:
        db_url = status.db_url
        comments = [
            f"{COMMENT_MARK} written from `supabase status -o json`.",
            f"{COMMENT_MARK} SUPABASE_DB_URL is the stack's DB_URL: it logs in as postgres,",
            f"{COMMENT_MARK} a superuser, so row-level security is NOT enforced.",
        ]
    return update_env_file(env_file, api_values(status, db_url), comments, force=force)
