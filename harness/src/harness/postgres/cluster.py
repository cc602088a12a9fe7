"""A private PostgreSQL 15 cluster: initdb, start, stop (by PID), restart on the same port.

The server runs as the ``postgres`` OS user (initdb refuses root): when this process is root, the
children are started with ``subprocess``'s ``user=``/``group=`` so the postmaster is our direct
child and its PID is exactly the one we stop. It listens on 127.0.0.1 only, on a free port, with
its Unix socket in the cluster's own temp dir, and trusts local connections (test only).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from harness import processes

DEFAULT_PG_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
SERVER_USER = "postgres"
SUPERUSER = "postgres"
# Durability is pointless for a throwaway cluster; these make writes and DDL much cheaper.
TEST_SERVER_OPTIONS: tuple[str, ...] = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
)
READY_TIMEOUT_S = 30.0
PORT_ATTEMPTS = 3
_PORT_TAKEN = "Address already in use"
# Fast shutdown (SIGINT) of exactly the postmaster, which stops its backends; then immediate
# shutdown (SIGQUIT); then SIGKILL.
STOP_LADDER: processes.Ladder = (
    (signal.SIGINT, 30.0),
    (signal.SIGQUIT, 10.0),
    (signal.SIGKILL, 10.0),
)


class PostgresError(RuntimeError):
    """The cluster could not be created, started or stopped."""


def pg_bin_dir() -> Path:
    """PostgreSQL 15's binaries; ``PG_BIN_DIR`` overrides the Debian location."""
    return Path(os.environ.get("PG_BIN_DIR", str(DEFAULT_PG_BIN_DIR)))


def server_account() -> processes.Account | None:
    """The user to drop to when we are root; ``None`` when we already are an ordinary user."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(SERVER_USER)
    return processes.Account(entry.pw_uid, entry.pw_gid)


def dsn(*, port: int, dbname: str, user: str = SUPERUSER, password: str | None = None) -> str:
    """A libpq URI for the cluster on 127.0.0.1 (no TLS: the cluster has none)."""
    auth = user if password is None else f"{user}:{password}"
    return f"postgresql://{auth}@127.0.0.1:{port}/{dbname}?sslmode=disable"


class PostgresCluster:
    """One throwaway cluster in its own temp dir. Use as a context manager or call ``close()``.

    ``stop()`` and ``start()`` keep the port and the data dir, so a test can take the database
    away and give it back (fault tests).
    """

    def __init__(
        self,
        *,
        base_dir: Path | None = None,
        port: int | None = None,
        password_users: tuple[str, ...] = (),
    ) -> None:
        self.account = server_account()
        self.root = Path(tempfile.mkdtemp(prefix="botmox-pg-", dir=base_dir))
        self.data_dir = self.root / "postgres"
        self.socket_dir = self.root / "run"
        self.log_file = self.root / "server.log"
        self._port_picked = port is None
        self.port = port if port is not None else processes.free_port()
        self._started_once = False
        self._log_offset = 0
        # Roles that must authenticate with a password (scram) even on this trusting cluster, so
        # their DSNs are realistic.
        self.password_users = password_users
        self._process: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._chown(self.root)
        self.socket_dir.mkdir()
        self._chown(self.socket_dir)

    # -- lifecycle -------------------------------------------------------------------------

    def initdb(self) -> None:
        """Create the data dir: UTF-8, C.UTF-8 collation, trust auth (only 127.0.0.1 listens)."""
        self._run_as_server(
            [
                str(pg_bin_dir() / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",
                # 1 MB WAL segments instead of 16: a smaller data dir to copy for snapshots.
                "--wal-segsize",
                "1",
            ]
        )
        self._write_hba()

    def clone_data_dir(self, source: Path) -> None:
        """Use a copy of a stopped cluster's data dir instead of ``initdb`` (cheaper, and keeps
        whatever was migrated into it)."""
        self.copy_data_dir(source, self.data_dir)

    @staticmethod
    def copy_data_dir(source: Path, target: Path) -> None:
        """Copy a stopped data dir; ``cp -a`` keeps the postgres ownership and the 0700 mode."""
        if (source / "postmaster.pid").exists():
            raise PostgresError(f"{source} belongs to a running server; stop it before copying")
        completed = subprocess.run(  # noqa: S603 - fixed binary, our own paths
            ["/bin/cp", "-a", str(source), str(target)],
            capture_output=True,
            check=False,
            timeout=120,
        )
        if completed.returncode != 0:
            raise PostgresError(f"copying {source} failed: {completed.stderr.decode(errors='replace')}")

    def start(self) -> None:
        """Start the postmaster as our child and wait until it accepts connections.

        The first start of a cluster whose port was picked here retries on a fresh port when another
        process took it meanwhile; later starts keep the port (clients hold its DSN)."""
        if self.running:
            return
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_once()
            except PostgresError:
                retry = self._port_picked and not self._started_once and attempt < PORT_ATTEMPTS
                if not (retry and _PORT_TAKEN in self.server_log()):
                    raise
                self.port = processes.free_port()
                continue
            self._started_once = True
            return

    def server_command(self, base: Sequence[str] | None = None) -> list[str]:
        """The postmaster's command line: ``base`` (the stack description's, rendered; by default
        the same for this cluster) with the binary from ``pg_bin_dir()``, plus this cluster's socket
        dir and the throwaway-cluster options."""
        command = list(base) if base is not None else self._default_command()
        if command[0] == "postgres":
            command[0] = str(pg_bin_dir() / "postgres")
        command += ["-c", f"unix_socket_directories={self.socket_dir}"]
        for option in TEST_SERVER_OPTIONS:
            command += ["-c", option]
        return command

    def _default_command(self) -> list[str]:
        return [
            "postgres",
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
        ]

    def _start_once(self) -> None:
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        try:
            _identity, self._process = processes.spawn(
                self.server_command(), log_path=self.log_file, cwd=self.root, account=self.account
            )
        except processes.ProcessNotReady as error:
            raise PostgresError(str(error)) from None
        try:
            self._wait_ready(self._process)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop exactly our postmaster (by PID) with ``STOP_LADDER``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            processes.stop_child(process, ladder=STOP_LADDER, whole_group=False)
        except RuntimeError as error:
            raise PostgresError(f"postmaster {process.pid} did not exit: {error}") from None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete the temp dir. Safe to call twice."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    def postmaster_pid_file(self) -> int | None:
        """The PID the server wrote to ``postmaster.pid`` (``None`` when absent)."""
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
        except (FileNotFoundError, IndexError):
            return None
        return int(first_line)

    def server_log(self, *, since_last_start: bool = True) -> str:
        """The server's log output (by default only what the latest start wrote)."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset if since_last_start else 0)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    # -- SQL helpers -----------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres", *, user: str = SUPERUSER, password: str | None = None) -> str:
        return dsn(port=self.port, dbname=dbname, user=user, password=password)

    def execute(self, statement: sql.SQL | sql.Composed, *, dbname: str = "postgres") -> None:
        """Run one statement as the superuser in autocommit (CREATE DATABASE needs it)."""
        with psycopg.connect(self.dsn(dbname), autocommit=True) as connection:
            connection.execute(statement)

    def create_database(self, name: str, *, template: str | None = None) -> None:
        statement: sql.Composed = sql.SQL("create database {}").format(sql.Identifier(name))
        if template is not None:
            # FILE_COPY copies the template's files after a checkpoint, which fsync=off makes cheap:
            # several times faster here than PG15's default WAL_LOG, which logs every page.
            statement = sql.SQL("{} template {} strategy file_copy").format(
                statement, sql.Identifier(template)
            )
        self.execute(statement)

    def drop_database(self, name: str) -> None:
        self.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))

    # -- internals -------------------------------------------------------------------------

    def _write_hba(self) -> None:
        lines = ["# written by harness.postgres.cluster: test cluster, 127.0.0.1 only", "local all all trust"]
        lines += [f"host all {user} 127.0.0.1/32 scram-sha-256" for user in self.password_users]
        lines += ["host all all 127.0.0.1/32 trust", ""]
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text("\n".join(lines))
        self._chown(hba)

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        def accepts() -> bool | None:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                return None

        processes.wait_ready(
            "postgres",
            accepts,
            alive=lambda: process.poll() is None,
            timeout_s=READY_TIMEOUT_S,
            log_path=self.log_file,
            waiting_for=self.dsn(),
            error=PostgresError,
        )

    def _chown(self, path: Path) -> None:
        if self.account is not None:
            os.chown(path, self.account.uid, self.account.gid)

    def _run_as_server(self, args: list[str]) -> None:
        completed = subprocess.run(  # noqa: S603 - fixed binaries, our own arguments
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            cwd=self.root,
            check=False,
            timeout=120,
            user=self.account.uid if self.account else None,
            group=self.account.gid if self.account else None,
            # Dropping to postgres must drop root's supplementary groups too.
            extra_groups=[] if self.account else None,
        )
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr).decode(errors="replace")
            raise PostgresError(f"{Path(args[0]).name} failed ({completed.returncode}):\n{output}")
