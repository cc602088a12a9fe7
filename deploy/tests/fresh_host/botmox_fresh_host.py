"""A pyinfra connector that plays a freshly installed host, for planning without one.

Every command "succeeds" with no output, so every fact reads as on a new machine: no packages, no
files, no users, no units. Nothing is executed and nothing is uploaded; it exists so that
``pyinfra inventories/test.py deploy/vps.py --dry`` plans the whole first deploy in a test. The
test puts this directory on PYTHONPATH; ``botmox_fresh_host-0.dist-info/entry_points.txt`` registers
it under pyinfra's ``pyinfra.connectors`` entry point group as ``@freshhost``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyinfra.connectors.base import BaseConnector
from pyinfra.connectors.util import CommandOutput, OutputLine

# The few facts a fresh Debian 12 does not answer with "nothing": the kernel's name, and the user
# tools `server.user` looks for (pyinfra's Which fact runs `command -v NAME || true`).
_ANSWERS = {
    "uname -s": "Linux",
    "command -v useradd ||": "/usr/sbin/useradd",
    "command -v usermod ||": "/usr/sbin/usermod",
}


class FreshHostConnector(BaseConnector):
    handles_execution = True

    @staticmethod
    def make_names_data(name: str | None = None) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
        yield f"@freshhost/{name or 'host'}", {}, ["@freshhost"]

    def connect(self) -> None:
        return None

    def run_shell_command(
        self, command: Any, print_output: bool = False, print_input: bool = False, **arguments: Any
    ) -> tuple[bool, CommandOutput]:
        text = str(command.get_raw_value() if hasattr(command, "get_raw_value") else command)
        lines = [OutputLine("stdout", answer) for probe, answer in _ANSWERS.items() if probe in text]
        return True, CommandOutput(lines)

    def put_file(
        self,
        filename_or_io: Any,
        remote_filename: str,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        raise AssertionError(f"a plan uploads nothing, yet {remote_filename} was uploaded")

    def get_file(
        self,
        remote_filename: str,
        filename_or_io: Any,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        raise AssertionError(f"a plan downloads nothing, yet {remote_filename} was downloaded")
