"""The vault file on disk: where it lives, its permissions, atomic replacement and the writers' lock.

- Location: ``$BOTMOX_AGENT_HOME/vault.json``, else ``$XDG_DATA_HOME/botmox-agent/vault.json``, else
  ``~/.local/share/botmox-agent/vault.json``; any path can be given instead.
- Permissions: the file is created 0600 and its directory 0700. A vault file readable or writable by
  group or others, owned by another user, or reached through a symlink is refused, not fixed: a widened
  mode means a copy may already have leaked, which chmod would hide.
- Writes are atomic: a temporary file in the same directory, fsync, ``os.replace``, fsync of the directory.
  A crash leaves either the old or the new file, never a mix; a failed write removes its temporary file.
- Writers take an exclusive ``fcntl.flock`` on ``<vault>.lock`` (the vault file itself is replaced on
  every write, so it cannot carry the lock) for the whole read-modify-write; readers need no lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

from botmox_agent.vault._errors import InsecurePermissions, VaultBusy, VaultCorrupted, VaultNotFound
from botmox_agent.vault._format import MAX_FILE_SIZE

HOME_ENV: Final = "BOTMOX_AGENT_HOME"
FILE_NAME: Final = "vault.json"
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
DEFAULT_LOCK_TIMEOUT: Final = 10.0
_LOCK_POLL: Final = 0.05


def default_vault_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$BOTMOX_AGENT_HOME/vault.json``, else the XDG data directory's ``botmox-agent/vault.json``."""
    env = os.environ if environ is None else environ
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV]) / FILE_NAME
    data_home = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else Path.home() / ".local/share"
    return data_home / "botmox-agent" / FILE_NAME


def read_vault_file(path: Path) -> bytes:
    """The file's bytes, after checking it is a regular file of ours with mode 0600 or stricter."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise VaultNotFound(
            f"no vault at {path}; create it with `botmox-agent vault set NAME`, or give --vault PATH"
        ) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InsecurePermissions(f"the vault {path} is a symlink; give the real path") from None
        raise
    try:
        _check_file(path, os.fstat(fd))
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read(MAX_FILE_SIZE + 1)
    finally:
        os.close(fd)


def _check_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise VaultCorrupted(f"the vault {path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise InsecurePermissions(
            f"the vault {path} belongs to uid {info.st_uid}, not to this user ({os.geteuid()}); "
            "run the agent as the vault's owner"
        )
    if info.st_mode & 0o077:
        raise InsecurePermissions(
            f"the vault {path} has mode {stat.S_IMODE(info.st_mode):04o}: other users may have read "
            f"it. Treat its secrets as exposed (rotate them), then `chmod 600 {path}`"
        )
    if info.st_size > MAX_FILE_SIZE:
        raise VaultCorrupted(f"the vault {path} is larger than {MAX_FILE_SIZE} bytes; not a vault")


def write_atomically(path: Path, data: bytes) -> None:
    """Replaces ``path`` with ``data`` (mode 0600) so that a crash leaves the old or the new file."""
    ensure_directory(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def ensure_directory(directory: Path) -> None:
    """Creates the vault's directory (and missing parents) with mode 0700; an existing one is kept."""
    if not directory.exists():
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


@contextlib.contextmanager
def writer_lock(path: Path, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Holds the vault's exclusive lock; raises VaultBusy after ``timeout`` seconds of waiting."""
    ensure_directory(path.parent)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise VaultBusy(
                        f"another botmox-agent process holds {lock_path} (waited {timeout:g} s); try again"
                    ) from None
                time.sleep(_LOCK_POLL)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
