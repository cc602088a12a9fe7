"""``python -m botmox_api.cutover plan|backfill|verify``: the storage-policy cutover tool.

The command line, the configuration (the API's own, ``load_settings``), signals and exit codes;
the work is in ``plan.py``, ``backfill.py`` and ``verify.py``, the output in ``report.py``
(``docs/contracts/cutover-cli.md``). Results go to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import asyncio
import enum
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn, Protocol, TypeVar

import typer

from botmox_api.config import ApiSettings, ConfigError, load_settings
from botmox_api.cutover import checkpoint, report
from botmox_api.cutover.backends import deployment_of, open_backends
from botmox_api.cutover.backfill import Backfill, BackfillOptions
from botmox_api.cutover.plan import run_plan
from botmox_api.cutover.progress import ProgressReport, progress_for
from botmox_api.cutover.report import Exit
from botmox_api.cutover.survey import Backends
from botmox_api.cutover.verify import run_verify
from botmox_api.model import TENANT_ID_PATTERN, JsonObject, StoreError

PROG = "python -m botmox_api.cutover"
DEFAULT_CONCURRENCY: Final = 32
BackendsFactory = Callable[[ApiSettings, int], Backends]
"""Builds the stores from the configuration, with the calls one batch may have in flight."""
T = TypeVar("T")
R = TypeVar("R", covariant=True)

app = typer.Typer(
    name=PROG,
    help="Move storage_policy between RTDB and Supabase without drift: plan, backfill, verify "
    "(docs/contracts/cutover-cli.md). Configuration: the API's variables, with an administrator's "
    "SUPABASE_DB_URL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Side(enum.StrEnum):
    rtdb = "rtdb"
    supabase = "supabase"


TenantOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tenant",
        metavar="TENANT",
        help="Only this tenant (repeatable); default: every tenant of both sides.",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="One JSON document on stdout with the same figures (progress on stderr)."),
]
BatchSizeOption = Annotated[
    int, typer.Option("--batch-size", min=1, max=10_000, help="Tenants read (and written) per batch.")
]


def _fail(message: str, code: Exit = Exit.usage) -> NoReturn:
    typer.echo(f"cutover: {message}", err=True)
    raise typer.Exit(int(code))


def _tenants(values: list[str] | None) -> list[str]:
    tenants = [value.strip().lower() for value in values or []]
    for tenant in tenants:
        if not TENANT_ID_PATTERN.match(tenant):
            _fail(f"--tenant {tenant!r} is not a tenant id (^[a-z0-9][a-z0-9_-]{{0,62}}$)")
    return tenants


def _prepare(ctx: typer.Context, concurrency: int = DEFAULT_CONCURRENCY) -> tuple[ApiSettings, Backends]:
    """The configuration and the stores; exit 2 naming the variable when either cannot be had."""
    factory: BackendsFactory = ctx.obj if callable(ctx.obj) else open_backends
    try:
        settings = load_settings()
        return settings, factory(settings, concurrency)
    except (ConfigError, ValueError) as error:
        _fail(f"invalid configuration: {error}")


def _emit(document: JsonObject | None, lines: list[str]) -> None:
    if document is not None:
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo("\n".join(lines))


async def _closing(backends: Backends, work: Awaitable[T]) -> T:
    try:
        return await work
    finally:
        for store in (backends.rtdb, backends.supabase):
            try:
                await store.aclose()
            except StoreError as error:  # a store that failed may fail to close too; the run's outcome stands
                typer.echo(f"cutover: closing: {report.failure_line(error)}", err=True)


class _Signals:
    """Ctrl-C and SIGTERM: the first asks the run to stop after the batch in flight (``stop``), or
    cancels a read-only run at once; a second abandons the batch in flight."""

    def __init__(self, *, graceful: bool) -> None:
        self.stop = asyncio.Event()
        self.received: signal.Signals | None = None
        self._graceful = graceful
        self._task: asyncio.Future[Any] | None = None

    def _handle(self, received: signal.Signals) -> None:
        first = self.received is None
        self.received = received if first else self.received
        if first and self._graceful:
            self.stop.set()
            typer.echo(
                f"cutover: {received.name}: stopping after the batch in flight "
                f"({received.name} again abandons it)",
                err=True,
            )
        elif self._task is not None:
            self._task.cancel()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(work)
        self._task = task
        for received in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(received, self._handle, received)
        try:
            return await task
        finally:
            for received in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(received)

    @property
    def exit_code(self) -> Exit:
        return Exit.interrupted if self.received in (None, signal.SIGINT) else Exit.backend_failed


def _store_failure(command: str, error: StoreError, as_json: bool, extra: str = "") -> NoReturn:
    if as_json:
        typer.echo(json.dumps(report.failure_json(command, error, Exit.backend_failed), indent=2))
    _fail(report.failure_line(error) + extra, Exit.backend_failed)


class ReadOnlyRun(Protocol[R]):
    """``run_plan`` and ``run_verify``: a walk over both sides that changes nothing."""

    def __call__(
        self,
        backends: Backends,
        *,
        tenants: Sequence[str],
        batch_size: int,
        default_tenant: str,
        progress: ProgressReport,
    ) -> Coroutine[Any, Any, R]: ...


def _read_only(
    ctx: typer.Context,
    command: str,
    run: ReadOnlyRun[R],
    tenant: list[str] | None,
    batch_size: int,
    as_json: bool,
) -> R:
    """A read-only command's walk: Ctrl-C or SIGTERM cancel it at once (there is nothing to finish)."""
    tenants = _tenants(tenant)
    settings, backends = _prepare(ctx)
    signals = _Signals(graceful=False)
    work = run(
        backends,
        tenants=tenants,
        batch_size=batch_size,
        default_tenant=settings.default_tenant_id,
        progress=progress_for(command, sys.stderr),
    )
    try:
        return asyncio.run(signals.run(_closing(backends, work)))
    except asyncio.CancelledError:
        _fail(f"interrupted; {command} changes nothing, run it again", signals.exit_code)
    except StoreError as error:
        _store_failure(command, error, as_json)


@app.command(rich_help_panel="Commands")
def plan(
    ctx: typer.Context,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
    summary: Annotated[bool, typer.Option("--summary", help="Totals only, no row per tenant.")] = False,
    batch_size: BatchSizeOption = 500,
) -> None:
    """Per tenant, what exists where (RTDB only, Supabase only, both equal, both different, invalid);
    a table and totals. Changes nothing. Exit 0."""
    result = _read_only(ctx, "plan", run_plan, tenant, batch_size, as_json)
    _emit(
        report.plan_json(result, summary=summary) if as_json else None,
        report.plan_text(result, summary=summary),
    )
    raise typer.Exit(int(report.plan_exit(result)))


@app.command(rich_help_panel="Commands")
def backfill(
    ctx: typer.Context,
    source: Annotated[Side, typer.Option("--from", help="The backend copied from.")],
    target: Annotated[Side, typer.Option("--to", help="The backend copied to.")],
    tenant: TenantOption = None,
    as_json: JsonOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide everything, write nothing.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a target that is newer than the source, or invalid.")
    ] = False,
    adopt_legacy: Annotated[
        bool,
        typer.Option(
            "--adopt-legacy",
            help="First move RTDB's pre-tenant settings/storage_policy node into DEFAULT_TENANT_ID's policy.",
        ),
    ] = False,
    batch_size: BatchSizeOption = 500,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", min=1, max=1000, help="Writes in flight at once (and RTDB reads of one batch)."
        ),
    ] = DEFAULT_CONCURRENCY,
    checkpoint_path: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            metavar="PATH",
            help="Where the run records its progress (default: .cutover/backfill-FROM-to-TO.json).",
        ),
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore a checkpoint; start from the beginning.")
    ] = False,
) -> None:
    """Copy every tenant's policy (or --tenant's) from one backend to the other, in batches; idempotent
    and resumable. Exit 0 when nothing was skipped, 1 when a tenant was skipped (each is listed)."""
    if source == target:
        _fail("--from and --to name the same backend")
    tenants = _tenants(tenant)
    settings, backends = _prepare(ctx, concurrency)
    options = BackfillOptions(
        source=source.value,
        target=target.value,
        tenants=tenants,
        dry_run=dry_run,
        force=force,
        adopt_legacy=adopt_legacy,
        default_tenant=settings.default_tenant_id,
        batch_size=batch_size,
        concurrency=concurrency,
        checkpoint_path=checkpoint_path or checkpoint.default_path(source.value, target.value),
        restart=restart,
        deployment=deployment_of(settings),
    )
    run = Backfill(backends, options)
    signals = _Signals(graceful=True)
    title = f"backfill {source.value} -> {target.value}" + (" (dry run)" if dry_run else "")
    resume = (
        "; a dry run wrote nothing: run it again"
        if dry_run
        else f"; {options.checkpoint_path} keeps what is done; run the same command again to resume"
    )
    try:
        result = asyncio.run(
            signals.run(_closing(backends, run.run(progress_for(title, sys.stderr), signals.stop)))
        )
    except asyncio.CancelledError:
        result = run.result
        _emit(
            report.backfill_json(result, signals.exit_code) if as_json else None,
            [*report.backfill_text(result), "the batch in flight was abandoned (its completed writes stay)"],
        )
        raise typer.Exit(int(signals.exit_code)) from None
    except StoreError as error:
        if not as_json:
            _emit(None, report.backfill_text(run.result))
        _store_failure("backfill", error, as_json, resume)
    code = signals.exit_code if result.interrupted else report.backfill_exit(result)
    _emit(report.backfill_json(result, code) if as_json else None, report.backfill_text(result))
    raise typer.Exit(int(code))


@app.command(rich_help_panel="Commands")
def verify(
    ctx: typer.Context,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
    batch_size: BatchSizeOption = 500,
) -> None:
    """Compare both sides field by field and print every difference with both values. Exit 0 only
    when both sides match (a policy on one side only, or an invalid one, is a difference)."""
    result = _read_only(ctx, "verify", run_verify, tenant, batch_size, as_json)
    _emit(report.verify_json(result) if as_json else None, report.verify_text(result))
    raise typer.Exit(int(report.verify_exit(result)))


def main() -> None:
    app(prog_name=PROG)


if __name__ == "__main__":
    main()
