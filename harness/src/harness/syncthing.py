"""Run a SyncThing as a child process that talks to nobody but 127.0.0.1.

Debian's ``syncthing`` (1.19 here) generates its home (keys, ``config.xml``) with ``syncthing generate``;
:func:`configure_home` then applies the loopback rules below to the config and writes the GUI's address
and API key into it (not onto the command line, where other users could read the key in ``ps``).
:class:`SyncthingProcess` runs ``syncthing serve`` on that home in a session of its own, waits until the
REST API answers with the key, and stops it by PID. The agent's tests use it, and the harness stack's
``syncthing`` service can run the same home and command.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from harness import processes

PROGRAM: Final = "syncthing"
CONFIG_FILE: Final = "config.xml"

# Options that keep SyncThing off the network: no discovery (global or LAN broadcast), no relays, no
# NAT traversal or STUN, no usage or crash reports, no upgrade checks; it listens for peers on a free
# loopback port (TCP only: no QUIC, which would probe STUN).
LOOPBACK_OPTIONS: Final[Mapping[str, str]] = {
    "listenAddress": "tcp://127.0.0.1:0",
    "globalAnnounceEnabled": "false",
    "localAnnounceEnabled": "false",
    "relaysEnabled": "false",
    "natEnabled": "false",
    "stunKeepaliveStartS": "0",
    "stunKeepaliveMinS": "0",
    "urAccepted": "-1",
    "crashReportingEnabled": "false",
    "autoUpgradeIntervalH": "0",
    "startBrowser": "false",
    "announceLANAddresses": "false",
}
# Variables of its environment: no default folder, no upgrades, no restarts. STMONITORED says "already
# under the monitor": without it SyncThing forks its worker into another process group under a monitor
# process, and the PID we hold would not be SyncThing's.
ENVIRONMENT: Final[Mapping[str, str]] = {
    "STNODEFAULTFOLDER": "1",
    "STNOUPGRADE": "1",
    "STNORESTART": "1",
    "STMONITORED": "1",
}


class SyncthingStartError(RuntimeError):
    """SyncThing exited, or its REST API did not answer in time; the message quotes its log."""


def new_api_key() -> str:
    return secrets.token_urlsafe(24)


def _environment(home: Path) -> dict[str, str]:
    # Only what SyncThing needs: no proxy variables (it would honour them), nothing secret. It refuses
    # to start without HOME; its home stands in, so a `~` in its defaults stays inside it.
    kept = {name: os.environ[name] for name in ("PATH", "LANG", "TZ") if name in os.environ}
    return {**kept, "HOME": str(home), **ENVIRONMENT}


def configure_home(home: Path, *, gui_port: int, api_key: str) -> str:
    """Generate ``home`` if it holds no config yet, apply the loopback rules and the GUI's address and
    key; returns this SyncThing's device id."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_path = home / CONFIG_FILE
    if not config_path.exists():
        generated = subprocess.run(  # noqa: S603 - a fixed program and our own paths
            [PROGRAM, "generate", "--home", str(home), "--no-default-folder", "--skip-port-probing"],
            check=False,
            capture_output=True,
            env=_environment(home),
            timeout=60,
        )
        if generated.returncode != 0:
            output = (generated.stdout + generated.stderr).decode(errors="replace")[-2000:]
            raise SyncthingStartError(f"`syncthing generate` failed ({generated.returncode}):\n{output}")
    tree = ET.parse(config_path)  # noqa: S314 - the file SyncThing just generated for us
    root = tree.getroot()
    options = _child(root, "options")
    for name, value in LOOPBACK_OPTIONS.items():
        for extra in options.findall(name)[1:]:
            options.remove(extra)
        _child(options, name).text = value
    gui = _child(root, "gui")
    gui.set("tls", "false")
    _child(gui, "address").text = f"127.0.0.1:{gui_port}"
    _child(gui, "apikey").text = api_key
    tree.write(config_path, encoding="unicode")
    config_path.chmod(0o600)
    device = root.find("device")
    if device is None or not device.get("id"):
        raise SyncthingStartError(f"no device id in {config_path}")
    return str(device.get("id"))


def _child(parent: ET.Element, tag: str) -> ET.Element:
    found = parent.find(tag)
    return found if found is not None else ET.SubElement(parent, tag)


class SyncthingProcess:
    """``syncthing serve`` on a home of its own, on 127.0.0.1, with a generated API key.

    ``home`` ``None`` uses a temporary directory, removed at :meth:`stop`. A context manager.
    """

    def __init__(
        self,
        home: Path | None = None,
        *,
        gui_port: int | None = None,
        api_key: str | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._given_home = home
        self.home = home or Path(tempfile.mkdtemp(prefix="syncthing-"))
        self.gui_port = gui_port or processes.free_port()
        self.api_key = api_key or new_api_key()
        self._start_timeout = start_timeout
        self._ladder: processes.Ladder = ((signal.SIGTERM, stop_timeout), (signal.SIGKILL, stop_timeout))
        self._process: subprocess.Popen[bytes] | None = None
        self.device_id = ""

    def __repr__(self) -> str:
        return f"SyncthingProcess(url={self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gui_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.home / "syncthing.log"

    def command(self) -> list[str]:
        return [PROGRAM, "serve", "--home", str(self.home), "--no-browser", "--no-restart", "--no-upgrade"]

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError(f"SyncThing is already running (pid {self._process.pid})")
        try:
            self.device_id = configure_home(self.home, gui_port=self.gui_port, api_key=self.api_key)
            try:
                _identity, self._process = processes.spawn(
                    self.command(), log_path=self.log_path, environment=_environment(self.home)
                )
            except processes.ProcessNotReady as error:
                raise SyncthingStartError(str(error)) from None
            self._wait_until_ready(self._process)
        except BaseException:
            self.stop()  # and a home of our own goes with it
            raise

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        processes.wait_http_ready(
            "SyncThing",
            process,
            f"{self.url}/rest/system/status",
            headers={"X-API-Key": self.api_key},
            timeout_s=self._start_timeout,
            log_path=self.log_path,
            error=SyncthingStartError,
        )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL, by PID; removes a home we made. Returns the exit status."""
        process, self._process = self._process, None
        code = None
        if process is not None:
            code = processes.stop_child(process, ladder=self._ladder)
        if self._given_home is None:
            shutil.rmtree(self.home, ignore_errors=True)
        return code

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
