#!/usr/bin/python3
"""Secrets made and kept on the host: the deploy installs this file as ``/usr/local/sbin/botmox-secrets``.

    botmox-secrets ensure FILE [--random NAME]... [--jwt NAME=ROLE]... [--export NAME=PATH]...

``FILE`` holds ``KEY=VALUE`` lines (mode 0600, the format of systemd's ``EnvironmentFile`` and of
docker-compose's ``--env-file``). Every missing ``--random`` name gets a fresh value (32 random bytes,
URL-safe base64: 43 characters, no character that needs quoting). Every ``--jwt`` name gets an HS256
token for Supabase role ``ROLE`` signed with the file's ``JWT_SECRET`` (Supabase's ``anon`` and
``service_role`` keys), minted again when it no longer verifies against ``JWT_SECRET`` (the secret was
rotated). Values already there are kept, so a re-run changes nothing. ``--export NAME=PATH`` also writes
the value alone into ``PATH`` (0600), which a service copies into its runtime directory at start.
Prints the names it wrote, never a value. Standard library only: it runs with Debian's python3.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path

JWT_SECRET_NAME = "JWT_SECRET"  # noqa: S105 - a variable name
# Supabase's self-hosting guide mints its keys for years; rotating JWT_SECRET re-mints them.
JWT_LIFETIME_S = 10 * 365 * 24 * 3600
JWT_ISSUER = "supabase"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def random_secret() -> str:
    return secrets.token_urlsafe(32)


def parse_env(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines and ``#`` comments skipped, order kept."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not _NAME.match(name):
            raise ValueError(f"not a KEY=VALUE line: {name[:40]!r}")
        values[name] = value
    return values


def format_env(values: dict[str, str]) -> str:
    return "".join(f"{name}={value}\n" for name, value in values.items())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_jwt(secret: str, role: str, now: int) -> str:
    """An HS256 JWT ``{"role": ROLE, "iss": "supabase", "iat", "exp"}``, as Supabase's keys are."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"role": role, "iss": JWT_ISSUER, "iat": now, "exp": now + JWT_LIFETIME_S}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def jwt_role(token: str, secret: str, now: int) -> str | None:
    """The token's role when its HS256 signature verifies with ``secret`` and it has not expired."""
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        if json.loads(_unb64(header)).get("alg") != "HS256":
            return None
        claims = json.loads(_unb64(payload))
    except ValueError:
        return None
    if not isinstance(claims, dict) or int(claims.get("exp", 0)) <= now:
        return None
    role = claims.get("role")
    return role if isinstance(role, str) else None


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a 0600 file: never a moment with a partial or readable file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def ensure(
    path: Path,
    *,
    randoms: list[str],
    jwts: dict[str, str],
    exports: dict[str, Path],
    now: int | None = None,
) -> list[str]:
    """Add what is missing to ``path`` (see the module's docstring); the names written, in order."""
    now = int(time.time()) if now is None else now
    values = parse_env(path.read_text()) if path.exists() else {}
    written: list[str] = []
    for name in randoms:
        if not values.get(name):
            values[name] = random_secret()
            written.append(name)
    if jwts:
        secret = values.get(JWT_SECRET_NAME)
        if not secret:
            raise ValueError(f"--jwt needs {JWT_SECRET_NAME} in the file (add --random {JWT_SECRET_NAME})")
        for name, role in jwts.items():
            if jwt_role(values.get(name, ""), secret, now) != role:
                values[name] = mint_jwt(secret, role, now)
                written.append(name)
    if written or not path.exists():
        _write_private(path, format_env(values))
    os.chmod(path, 0o600)
    for name, target in exports.items():
        if name not in values:
            raise ValueError(f"--export {name}: no such name in {path}")
        if not target.exists() or target.read_text() != values[name] or name in written:
            _write_private(target, values[name])
            written.append(f"{name}->{target}")
    return written


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _NAME.match(name) or not value:
            raise SystemExit(f"botmox-secrets: {option} takes NAME=VALUE, got {item!r}")
        pairs[name] = value
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="botmox-secrets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ensure_command = commands.add_parser("ensure", help="add the missing secrets to FILE")
    ensure_command.add_argument("file", type=Path)
    ensure_command.add_argument("--random", action="append", default=[], metavar="NAME")
    ensure_command.add_argument("--jwt", action="append", default=[], metavar="NAME=ROLE")
    ensure_command.add_argument("--export", action="append", default=[], metavar="NAME=PATH")
    arguments = parser.parse_args(argv)
    for name in arguments.random:
        if not _NAME.match(name):
            raise SystemExit(f"botmox-secrets: not a variable name: {name!r}")
    os.umask(0o077)
    try:
        written = ensure(
            arguments.file,
            randoms=arguments.random,
            jwts=_pairs(arguments.jwt, "--jwt"),
            exports={name: Path(p) for name, p in _pairs(arguments.export, "--export").items()},
        )
    except (OSError, ValueError) as error:
        print(f"botmox-secrets: {error}", file=sys.stderr)
        return 1
    print("wrote: " + (", ".join(written) if written else "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
