"""``botmox-agent vault set|get|list|delete|rotate-key``: the vault's command line.

Values never travel through argv (visible to every user in ``ps``): ``set`` reads the value from stdin,
or from a hidden prompt on a terminal; ``get`` prints it to stdout only with ``--reveal``. Passphrases come
from ``BOTMOX_AGENT_VAULT_PASSPHRASE`` (for services and automation; the new one of ``rotate-key`` from
``BOTMOX_AGENT_VAULT_NEW_PASSPHRASE``) or from a hidden prompt. Messages and errors go to stderr.

Exit codes (``EXIT_CODES``, documented in services/agent/README.md):
0 done; 1 an unexpected error; 2 a usage error (bad option, invalid secret name, empty value);
3 no vault file; 4 no such secret; 5 the key does not open the vault; 6 no key source (no OS keyring, no
keyring entry, no passphrase); 7 the vault is corrupted or altered; 8 the vault file's permissions are
unsafe; 9 the vault is busy or changed under us (try again).
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Final, NoReturn

import typer

from botmox_agent.vault._errors import (
    InsecurePermissions,
    InvalidSecretName,
    KeySourceUnavailable,
    SecretNotFound,
    VaultAlreadyExists,
    VaultBusy,
    VaultChanged,
    VaultCorrupted,
    VaultError,
    VaultNotFound,
    WrongKey,
)
from botmox_agent.vault._keys import (
    KDF_COSTS,
    PASSPHRASE_ENV,
    KeyringKeySource,
    KeySource,
    PassphraseKeySource,
)
from botmox_agent.vault._names import SecretRef
from botmox_agent.vault._secret_value import SecretValue
from botmox_agent.vault._storage import default_vault_path
from botmox_agent.vault._vault import Vault, key_kind

VAULT_ENV: Final = "BOTMOX_AGENT_VAULT"
NEW_PASSPHRASE_ENV: Final = "BOTMOX_AGENT_VAULT_NEW_PASSPHRASE"  # noqa: S105 - a variable's name
EXIT_UNEXPECTED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CODES: Final[dict[type[VaultError], int]] = {
    InvalidSecretName: EXIT_USAGE,
    VaultNotFound: 3,
    SecretNotFound: 4,
    WrongKey: 5,
    KeySourceUnavailable: 6,
    VaultCorrupted: 7,
    InsecurePermissions: 8,
    VaultBusy: 9,
    VaultChanged: 9,
    VaultAlreadyExists: 9,
}


class KeySourceKind(enum.StrEnum):
    keyring = "keyring"
    passphrase = "passphrase"  # noqa: S105 - a choice's name


class KdfStrength(enum.StrEnum):
    interactive = "interactive"
    moderate = "moderate"
    sensitive = "sensitive"


app = typer.Typer(
    name="vault",
    help="The local secret vault: values sealed in one file, the key in the OS keyring or a passphrase "
    "(docs/agent-security.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="proxmox/pve1 or secret://proxmox/pve1")]
KdfOption = Annotated[
    KdfStrength,
    typer.Option(
        "--kdf-cost",
        help="Argon2id's cost for a new passphrase key: interactive (64 MiB), moderate (256 MiB), "
        "sensitive (1 GiB).",
    ),
]


class _Context:
    def __init__(self, path: Path) -> None:
        self.path = path


@app.callback()
def _vault(
    ctx: typer.Context,
    vault: Annotated[
        Path | None,
        typer.Option(
            "--vault",
            envvar=VAULT_ENV,
            metavar="PATH",
            help="The vault file; default $BOTMOX_AGENT_HOME/vault.json or "
            "~/.local/share/botmox-agent/vault.json.",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = _Context(vault if vault is not None else default_vault_path())


# Extra arguments are let through to be refused below: click's own message would quote the value back.
@app.command("set", context_settings={"allow_extra_args": True})
def set_secret(
    ctx: typer.Context,
    name: NameArgument,
    key_source: Annotated[
        KeySourceKind,
        typer.Option("--key-source", help="Only when the vault is created: where its key lives."),
    ] = KeySourceKind.keyring,
    kdf_cost: KdfOption = KdfStrength.moderate,
) -> None:
    """Stores a secret; its value is read from stdin, or from a hidden prompt on a terminal."""
    path = _path(ctx)
    if ctx.args:
        _fail(
            EXIT_USAGE,
            "a value is never taken from the command line (every user sees it in ps); "
            "pipe it on stdin or type it at the prompt",
        )

    def run() -> None:
        ref = SecretRef.parse(name)
        if path.exists():
            # An existing vault opens first, so a wrong passphrase fails before the value is typed.
            vault = _open(path)
            value = _read_value(ref)
        else:
            # A new vault is created only once there is a value to put in it.
            value = _read_value(ref)
            vault = Vault.create(path, _new_source(key_source, kdf_cost, PASSPHRASE_ENV))
            typer.echo(f"created the vault {path} (key: {vault.key_kind})", err=True)
        vault.set(ref, value)
        typer.echo(f"stored {ref}", err=True)

    _run(run)


@app.command("get")
def get_secret(
    ctx: typer.Context,
    name: NameArgument,
    reveal: Annotated[bool, typer.Option("--reveal", help="Print the value to stdout.")] = False,
) -> None:
    """Checks a secret exists; with --reveal, prints its value (and only it) to stdout."""
    path = _path(ctx)

    def run() -> None:
        ref = SecretRef.parse(name)
        value = _open(path).get(ref)
        if not reveal:
            typer.echo(f"{ref} is set; add --reveal to print its value to stdout", err=True)
            return
        # No newline into a pipe or a file, so they receive exactly the value.
        sys.stdout.write(value.reveal() + ("\n" if sys.stdout.isatty() else ""))
        sys.stdout.flush()

    _run(run)


@app.command("list")
def list_secrets(ctx: typer.Context) -> None:
    """Prints the secrets' references, one a line (names only, never values)."""
    path = _path(ctx)

    def run() -> None:
        for name in _open(path).names():
            typer.echo(str(SecretRef(name)))

    _run(run)


@app.command("delete")
def delete_secret(ctx: typer.Context, name: NameArgument) -> None:
    """Removes a secret."""
    path = _path(ctx)

    def run() -> None:
        ref = SecretRef.parse(name)
        _open(path).delete(ref)
        typer.echo(f"deleted {ref}", err=True)

    _run(run)


@app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    to: Annotated[
        KeySourceKind | None,
        typer.Option("--to", help="The new key's source; default: the current one (a fresh key)."),
    ] = None,
    kdf_cost: KdfOption = KdfStrength.moderate,
) -> None:
    """Re-seals every secret under a new key (a new salt or keyring entry), in one atomic write.

    The new passphrase comes from BOTMOX_AGENT_VAULT_NEW_PASSPHRASE or a hidden prompt.
    """
    path = _path(ctx)

    def run() -> None:
        vault = _open(path)
        target = to if to is not None else KeySourceKind(vault.key_kind)
        vault.rotate_key(_new_source(target, kdf_cost, NEW_PASSPHRASE_ENV))
        typer.echo(f"re-sealed the vault {path} under a new key ({target})", err=True)

    _run(run)


def can_prompt() -> bool:
    """Whether a hidden prompt can reach a person: stdin is a terminal, or /dev/tty opens."""
    if stdin_is_terminal():
        return True
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        return False
    return True


def _path(ctx: typer.Context) -> Path:
    state = ctx.obj
    assert isinstance(state, _Context)
    return state.path


def _open(path: Path) -> Vault:
    kind = key_kind(path)
    source: KeySource = KeyringKeySource() if kind == "keyring" else PassphraseKeySource(_passphrase())
    return Vault.open(path, source)


def _new_source(kind: KeySourceKind, cost: KdfStrength, env: str) -> KeySource:
    if kind is KeySourceKind.keyring:
        return KeyringKeySource()
    passphrase = _passphrase(env=env, confirm=True, what="new vault passphrase")
    return PassphraseKeySource(passphrase, KDF_COSTS[cost])


def _passphrase(
    env: str = PASSPHRASE_ENV, confirm: bool = False, what: str = "vault passphrase"
) -> SecretValue:
    from_env = os.environ.get(env)
    if from_env:
        return SecretValue(from_env)
    if not can_prompt():
        raise KeySourceUnavailable(f"the {what} is needed: set {env}, or run on a terminal to be prompted")
    return SecretValue(
        typer.prompt(what.capitalize(), hide_input=True, confirmation_prompt=confirm, err=True)
    )


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _read_value(ref: SecretRef) -> SecretValue:
    if stdin_is_terminal():
        text = typer.prompt(f"Value of {ref}", hide_input=True, confirmation_prompt=True, err=True)
    else:
        text = sys.stdin.read()
        # One trailing newline is the shell's (echo, heredoc), not the secret's.
        text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        _fail(EXIT_USAGE, f"the value of {ref} is empty; nothing stored")
    return SecretValue(text)


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except VaultError as error:
        _fail(_exit_code(error), str(error))


def _exit_code(error: VaultError) -> int:
    for kind in type(error).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return EXIT_UNEXPECTED


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"botmox-agent: {message}", err=True)
    raise typer.Exit(code)
