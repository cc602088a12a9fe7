"""Debian's headless Chromium as a child process we own, driven through Playwright over CDP.

We start ``/usr/bin/chromium`` ourselves (never ``playwright install``: its browser downloads cannot
be reached here) in its own session with a throwaway profile, and let Playwright attach to it with
``connect_over_cdp``. Owning the process means it is stopped by its PID (and the process group it
leads: the zygote and renderers it forks), also when a test fails half-way.

The DevTools port is chosen by Chromium (``--remote-debugging-port=0``) and read from the
``DevToolsActivePort`` file it writes into the profile, so two browsers never race for a port.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

from playwright.sync_api import Browser, Playwright, sync_playwright

from harness import processes

CHROMIUM_EXECUTABLE = "/usr/bin/chromium"

# Headless, no sandbox (we run as root), and nothing that talks to the internet on its own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class BrowserStartError(RuntimeError):
    """Chromium exited or did not open its DevTools port in time."""


class HeadlessChromium:
    """One Chromium process: ``start()`` returns the CDP endpoint, ``stop()`` ends it by PID."""

    def __init__(
        self,
        executable: str = CHROMIUM_EXECUTABLE,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._executable = executable
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._profile: Path | None = None
        self.cdp_url: str | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> str:
        if self._process is not None:
            raise RuntimeError(f"chromium is already running (pid {self._process.pid})")
        if shutil.which(self._executable) is None:
            raise BrowserStartError(f"{self._executable} not found: apt-get install -y chromium")
        self._profile = Path(tempfile.mkdtemp(prefix="harness-chromium-"))
        command = [self._executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "about:blank"]
        try:
            _identity, self._process = processes.spawn(command, log_path=self._profile / "chromium.log")
            self.cdp_url = f"http://127.0.0.1:{self._wait_for_port(self._process, self._profile)}"
        except processes.ProcessNotReady as error:
            self.stop()
            raise BrowserStartError(str(error)) from None
        except BaseException:
            self.stop()
            raise
        return self.cdp_url

    def _wait_for_port(self, process: subprocess.Popen[bytes], profile: Path) -> int:
        port_file = profile / "DevToolsActivePort"

        def port() -> int | None:
            # The file is written in one go, but read defensively: an empty first line means "not yet".
            with contextlib.suppress(FileNotFoundError):
                first_line = port_file.read_text().partition("\n")[0].strip()
                if first_line.isdigit():
                    return int(first_line)
            return None

        return processes.wait_ready(
            "chromium",
            port,
            alive=lambda: process.poll() is None,
            timeout_s=self._start_timeout,
            log_path=profile / "chromium.log",
            waiting_for="its DevTools port",
            error=BrowserStartError,
        )

    def stop(self) -> None:
        """SIGTERM to the group Chromium leads, SIGKILL after the timeout; removes the profile."""
        process, self._process = self._process, None
        self.cdp_url = None
        if process is not None:
            processes.stop_child(
                process, ladder=((signal.SIGTERM, self._stop_timeout), (signal.SIGKILL, self._stop_timeout))
            )
            # Renderers may outlive the browser process by a moment; the group is still ours.
            processes.signal_group(process.pid, signal.SIGKILL)
        profile, self._profile = self._profile, None
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def chromium_browser(chromium: HeadlessChromium | None = None) -> Iterator[Browser]:
    """A Playwright ``Browser`` attached to a Chromium we start here (or were given) and stop after."""
    owned = chromium is None
    process = chromium if chromium is not None else HeadlessChromium()
    cdp_url = process.start() if owned else process.cdp_url
    if cdp_url is None:
        raise RuntimeError("the given HeadlessChromium is not running")
    playwright: Playwright | None = None
    try:
        playwright = sync_playwright().start()
        browser = playwright.chromium.connect_over_cdp(cdp_url)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        if playwright is not None:
            playwright.stop()
        if owned:
            process.stop()
