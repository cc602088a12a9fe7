"""``botmox-agent pair``, ``run`` and ``status``: the agent's runtime commands (exit codes in
``_exit_codes.py``, documented in services/agent/README.md).

``register_commands`` adds them to a Typer app with the executors factory to use: the command line
passes the production one (``__main__``), tests their own. Messages go to stderr; ``status --json``
and ``status``'s report go to stdout. The pairing code and the credential are never printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from botmox_agent.runtime import _exit_codes as exit_codes
from botmox_agent.runtime._executors_wiring import ExecutorsFactory
from botmox_agent.runtime._http import HttpServerError
from botmox_agent.runtime._journal import read_recent
from botmox_agent.runtime._logging import agent_logger
from botmox_agent.runtime._pairing import (
    AlreadyPaired,
    CodeRefused,
    PairingError,
    PairingRequest,
    ServerUnreachable,
    pair,
)
from botmox_agent.runtime._service import AGENT_VERSION, NotPaired, run_agent
from botmox_agent.runtime._settings import AgentSettings, check_server_url
from botmox_agent.runtime._state import StateDir, StateError
from botmox_agent.runtime._status import CONNECTED
from botmox_agent.runtime._tls import CaFileError, client_tls_context
from botmox_agent.vault import SecretValue, VaultError
from botmox_protocol import COMMAND_KINDS

_PAIRING_ERRORS: dict[type[PairingError], int] = {
    AlreadyPaired: exit_codes.ALREADY_PAIRED,
    CodeRefused: exit_codes.CODE_REFUSED,
    ServerUnreachable: exit_codes.SERVER_UNREACHABLE,
}


def register_commands(app: typer.Typer, executors_factory: ExecutorsFactory) -> None:
    @app.command("pair")
    def pair_command(
        server: Annotated[
            str | None,
            typer.Option("--server", metavar="URL", help="The control plane's base URL, https://..."),
        ] = None,
        code: Annotated[
            str | None,
            typer.Option(
                "--code",
                metavar="CODE",
                envvar="BOTMOX_AGENT_PAIRING_CODE",
                show_envvar=True,
                help="The one-time pairing code from a tenant admin (the variable keeps it out of ps).",
            ),
        ] = None,
        name: Annotated[
            str | None,
            typer.Option("--name", help="This agent's name; default BOTMOX_AGENT_NAME or the host name."),
        ] = None,
        force: Annotated[bool, typer.Option("--force", help="Pair again although already paired.")] = False,
    ) -> None:
        """Exchanges a one-time pairing code for this agent's id and credential (kept in the vault)."""
        settings = _settings()
        server_url = server or settings.server_url
        if server_url is None:
            _fail(exit_codes.USAGE, "give the server's URL: --server URL (or BOTMOX_AGENT_SERVER_URL)")
        if not code:
            _fail(exit_codes.USAGE, "give the pairing code: --code CODE (or BOTMOX_AGENT_PAIRING_CODE)")
        try:
            server_url = check_server_url(server_url)
        except ValueError as error:
            _fail(exit_codes.USAGE, str(error))
        agent_name = name or settings.name

        def act() -> None:
            executors = executors_factory(settings, _no_secrets)
            try:
                kinds = executors.kinds()
            finally:
                asyncio.run(executors.aclose())
            request = PairingRequest(
                server_url=server_url,
                code=SecretValue(code),
                name=agent_name,
                version=AGENT_VERSION,
                capabilities=tuple(sorted(kinds & COMMAND_KINDS.names())),
            )
            identity = pair(settings, request, tls=client_tls_context(settings.ca_file), force=force)
            typer.echo(
                f"paired: agent {identity.agent_id} of tenant {identity.tenant_id} at {identity.server_url}; "
                f"its credential is in the vault {settings.vault}. Start it with `botmox-agent run`.",
                err=True,
            )

        _guarded(act)

    @app.command("run")
    def run_command() -> None:
        """Runs the agent: connects to the control plane and executes its commands until stopped
        (SIGTERM/SIGINT). Pairs first when BOTMOX_AGENT_PAIRING_CODE is set and it is not paired."""
        settings = _settings()
        code = exit_codes.OK

        def act() -> None:
            nonlocal code
            code = asyncio.run(_run(settings, executors_factory))

        _guarded(act)
        raise typer.Exit(code)

    @app.command("status")
    def status_command(
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
        last: Annotated[int, typer.Option("--last", min=0, max=1000, help="How many recent commands.")] = 10,
    ) -> None:
        """Shows the identity, the connection and the last commands. Exit code 0 when `run` is
        connected, 3 when it is not running or not connected."""
        settings = _settings()
        report: dict[str, object] = {}

        def act() -> None:
            report.update(_status_report(settings, last))

        _guarded(act)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print_status(report)
        raise typer.Exit(exit_codes.OK if report["connected"] else exit_codes.NOT_CONNECTED)


async def _run(settings: AgentSettings, executors_factory: ExecutorsFactory) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        ended = await run_agent(settings, executors_factory=executors_factory, stop=stop, log=agent_logger())
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    if ended.final_close_code is None:
        return exit_codes.OK
    typer.echo(f"botmox-agent: {ended.reason}", err=True)
    return exit_codes.BY_CLOSE_CODE.get(ended.final_close_code, exit_codes.UNEXPECTED)


def _status_report(settings: AgentSettings, last: int) -> dict[str, object]:
    state = StateDir(settings.state_dir)
    identity = state.read_identity()
    status = state.read_status() or {}
    pid = status.get("pid")
    running = isinstance(pid, int) and status.get("state") != "stopped" and _alive(pid)
    commands = [
        {
            "command_id": c.command_id,
            "kind": c.kind,
            "outcome": c.outcome,
            "error_code": c.error_code,
            "accepted_at": c.accepted_at,
            "finished_at": c.finished_at,
        }
        for c in read_recent(state.journal_path, last)
    ]
    return {
        "paired": identity is not None,
        "identity": None if identity is None else identity.model_dump(),
        "running": running,
        "connected": running and status.get("state") == CONNECTED,
        "state": status.get("state", "never started") if running else "not running",
        "last_connected_at": status.get("last_connected_at"),
        "last_disconnected_at": status.get("last_disconnected_at"),
        "last_close_code": status.get("last_close_code"),
        "reconnects": status.get("reconnects", 0),
        "recent_commands": commands,
    }


def _print_status(report: dict[str, object]) -> None:
    identity = report["identity"]
    if isinstance(identity, dict):
        typer.echo(f"agent:      {identity['agent_id']} ({identity['name']})")
        typer.echo(f"tenant:     {identity['tenant_id']}")
        typer.echo(f"server:     {identity['server_url']}")
    else:
        typer.echo("agent:      not paired")
    typer.echo(f"state:      {report['state']}")
    typer.echo(f"connected:  {report['last_connected_at'] or '-'}")
    close_code = report["last_close_code"] or "-"
    typer.echo(f"disconnected: {report['last_disconnected_at'] or '-'} (close code {close_code})")
    typer.echo(f"reconnects: {report['reconnects']}")
    commands = report["recent_commands"]
    assert isinstance(commands, list)
    typer.echo("last commands:" if commands else "last commands: none")
    for command in commands:
        outcome = command["outcome"] + (f" {command['error_code']}" if command["error_code"] else "")
        typer.echo(f"  {command['accepted_at']}  {command['command_id']}  {command['kind']}  {outcome}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _no_secrets(ref: object) -> SecretValue:
    raise VaultError("pairing reads no secret")


def _settings() -> AgentSettings:
    try:
        return AgentSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"BOTMOX_AGENT_{'_'.join(str(part) for part in issue['loc']).upper()}: {issue['msg']}"
            for issue in error.errors(include_input=False)
        )
        _fail(exit_codes.USAGE, f"invalid settings: {problems}")


def _guarded(action: Callable[[], None]) -> None:
    try:
        action()
    except NotPaired as error:
        _fail(exit_codes.NOT_PAIRED, str(error))
    except PairingError as error:
        _fail(_PAIRING_ERRORS.get(type(error), exit_codes.SERVER_REFUSED), str(error))
    except VaultError as error:
        _fail(exit_codes.VAULT_PROBLEM, f"vault: {error}")
    except CaFileError as error:
        _fail(exit_codes.USAGE, str(error))
    except StateError as error:
        _fail(exit_codes.STATE_PROBLEM, str(error))
    except HttpServerError as error:
        _fail(exit_codes.UNEXPECTED, str(error))


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"botmox-agent: {message}", err=True)
    raise typer.Exit(code)
