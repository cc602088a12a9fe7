"""The storage-policy cutover runbook's commands work exactly as written on a stack from ``make local``.

``docs/runbooks/storage-policy-cutover.md``, section "On a local stack", is a walk-through: ``sh`` blocks
run in order in one terminal, each followed by a ``text`` block of what it prints (trimmed). This test
brings up a native stack with a private ``BOTMOX_HARNESS_HOME`` (as ``make local`` would), seeds the
tenants the walk-through's outputs show, and runs every ``sh`` block in bash from the project root,
as written: the exports of one block carry over to the next, as in a terminal, and the environment
starts without the project's venv (the runbook activates it). It checks each block's exit status (0,
or the ``# exits N`` its last line says) and that the lines of its ``text`` block appear in what it
printed, in order (``…`` stands for anything, a line of ``…`` alone for any lines; spaces are not
counted). The tenants' users write between some blocks, as the runbook says they do.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pytest

from harness import processes
from harness.fixtures.tools import skip_or_fail
from harness.stack.native import NativeRuntime
from harness.stack.state import HOME_VARIABLE, HarnessPaths, StackState, load
from harness.stack.tokens import demo_token

ROOT: Final = Path(__file__).resolve().parents[2]
RUNBOOK: Final = ROOT / "docs" / "runbooks" / "storage-policy-cutover.md"
SECTION: Final = "On a local stack"
WRONG_SECTION: Final = "When it goes wrong"
CLI_TIMEOUT_S: Final = 180
BLOCK_TIMEOUT_S: Final = 120
POLICY_PATH: Final = "/api/v1/settings/storage_policy"
SHADOW_MISMATCH: Final = '"event": "storage_policy_shadow_mismatch"'
LOG_WAIT_S: Final = 15.0

CHECKPOINTS: Final = ROOT / ".cutover"

_FENCE = re.compile(r"^```(\w*)\s*$")
_EXITS = re.compile(r"#\s*exits (\d+)\b")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# --- The runbook's walk-through.


@dataclass(frozen=True)
class Block:
    """One ``sh`` block of the walk-through and what the runbook says it does."""

    commands: str
    expected_exit: int
    expected_output: tuple[str, ...] = ()
    line: int = 0
    heading: str = ""
    """The nearest heading above the block."""

    def __str__(self) -> str:
        return f"runbook line {self.line}: {self.commands.strip()}"


def walkthrough(markdown: str, section: str = SECTION) -> list[Block]:
    """The ``sh`` blocks under the heading ``section`` (to the next heading of its level or above),
    each with the ``text`` block that follows it (before the next ``sh`` block), if any."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip("#").strip() == section), None)
    if start is None:
        raise AssertionError(f"no heading {section!r} in the runbook")
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    blocks: list[Block] = []
    index = start + 1
    current = section
    while index < len(lines):
        line = lines[index]
        heading = re.match(r"^(#+)\s+(.*)$", line)
        if heading and len(heading.group(1)) <= level:
            break
        if heading:
            current = heading.group(2).strip()
        fence = _FENCE.match(line)
        if not fence:
            index += 1
            continue
        end = next(j for j in range(index + 1, len(lines)) if lines[j].startswith("```"))
        body = lines[index + 1 : end]
        if fence.group(1) == "sh":
            exits = [int(match.group(1)) for text in body for match in [_EXITS.search(text)] if match]
            commands = "\n".join(body) + "\n"
            blocks.append(Block(commands, exits[-1] if exits else 0, line=index + 1, heading=current))
        elif fence.group(1) == "text" and blocks and not blocks[-1].expected_output:
            blocks[-1] = dataclasses.replace(blocks[-1], expected_output=tuple(body))
        index = end + 1
    return blocks


def _normal(text: str) -> str:
    return " ".join(_ANSI.sub("", text).split())


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in _normal(expected).split("…")]
    return re.compile(r"^\s*" + r".*?".join(part.strip() and part for part in parts) + r"\s*$")


def missing_lines(expected: tuple[str, ...], printed: str) -> list[str]:
    """The expected lines not found, in order, among the printed ones (``…`` matches anything; a
    line of ``…`` alone stands for lines left out, which the in-order search skips anyway)."""
    actual = [_normal(line) for line in printed.splitlines()]
    position = 0
    missing: list[str] = []
    for line in expected:
        if _normal(line) in ("", "…"):
            continue
        pattern = _line_pattern(line)
        found = next((i for i in range(position, len(actual)) if pattern.match(actual[i])), None)
        if found is None:
            missing.append(line)
        else:
            position = found + 1
    return missing


def test_the_walkthrough_is_found_with_its_outputs_and_exit_statuses() -> None:
    markdown = "\n".join(
        [
            "# R",
            "```sh",
            "make setup",
            "```",
            "## On a local stack",
            "Prose.",
            "```sh",
            "source .venv/bin/activate",
            "make cutover-verify   # exits 1: one difference",
            "```",
            "It prints:",
            "```text",
            "verify: 2 tenants, … differ",
            "…",
            "acme  operational",
            "```",
            "```sh",
            "make cutover-plan",
            "```",
            "### A sub-heading stays in the section",
            "```sh",
            "make local-down",
            "```",
            "## Next",
            "```sh",
            "rm -rf /",
            "```",
        ]
    )
    blocks = walkthrough(markdown)
    assert [block.commands for block in blocks] == [
        "source .venv/bin/activate\nmake cutover-verify   # exits 1: one difference\n",
        "make cutover-plan\n",
        "make local-down\n",
    ]
    assert [block.expected_exit for block in blocks] == [1, 0, 0]
    assert blocks[0].expected_output == ("verify: 2 tenants, … differ", "…", "acme  operational")
    printed = "make: ...\nverify: 2 tenants,   1 differ\nglobex ok\nacme operational local cloud\n"
    assert missing_lines(blocks[0].expected_output, printed) == ["acme  operational"]
    assert missing_lines(("verify: 2 tenants, … differ", "acme operational …"), printed) == []
    assert missing_lines(("acme operational …", "verify: …"), printed) == ["verify: …"], "in order"


# --- A stack from `make local`, and the tenants the walk-through's outputs show.


@dataclass
class LocalStack:
    paths: HarnessPaths
    environment: dict[str, str]

    def harness(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness", *args],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )

    @property
    def state(self) -> StackState:
        state = load(self.paths)
        assert state is not None, "no stack runs"
        return state

    def _authorization(self, tenant: str) -> dict[str, str]:
        state = self.state
        token = demo_token(
            secret=state.jwt_secret, audience=state.jwt_audience, issuer=state.jwt_issuer, tenant_id=tenant
        )
        return {"Authorization": f"Bearer {token}"}

    def assert_the_api_is_ours(self) -> None:
        """The API at the state's URL takes this stack's tokens. A port chosen free can be taken by
        another stack's API restarting at that moment; then `up` saw that API's health check."""
        answer = httpx.get(
            self.state.api_url + POLICY_PATH, headers=self._authorization("demo"), timeout=10, trust_env=False
        )
        log = self.paths.log_file("api").read_text(errors="replace")
        assert answer.status_code in (200, 404), (
            f"{self.state.api_url} refused this stack's token ({answer.status_code} {answer.text}): another "
            f"stack's API holds the port; the API's log:\n{log}"
        )

    def save_policy(self, tenant: str, body: Mapping[str, object], *, patch: bool = False) -> None:
        """What a tenant's user does on the settings page: save its storage policy through the API."""
        method = "PATCH" if patch else "PUT"
        answer = httpx.request(
            method,
            self.state.api_url + POLICY_PATH,
            json=body,
            headers=self._authorization(tenant),
            timeout=10,
            trust_env=False,
        )
        assert answer.status_code == 200, f"{method} for {tenant}: {answer.status_code} {answer.text}"

    def read_policy(self, tenant: str) -> None:
        """The settings page opened: a read of the tenant's storage policy (what shadow reads compare)."""
        answer = httpx.get(
            self.state.api_url + POLICY_PATH, headers=self._authorization(tenant), timeout=10, trust_env=False
        )
        assert answer.status_code == 200, f"GET for {tenant}: {answer.status_code} {answer.text}"

    def wait_for_api_log(self, *parts: str) -> None:
        """Until the API has logged a line holding every one of ``parts`` (shadow reads compare after
        the answer, off the request path)."""
        log = self.paths.log_file("api")
        deadline = time.monotonic() + LOG_WAIT_S
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if any(all(part in line for part in parts) for line in text.splitlines()):
                return
            time.sleep(0.1)
        raise AssertionError(f"the API logged no line with {parts} in {LOG_WAIT_S} s")

    def put_rtdb_node(self, tenant: str, node: Mapping[str, object]) -> None:
        """A node edited by hand in RTDB (its console or REST), as production has a few."""
        state = self.state
        url = f"http://127.0.0.1:{state.ports['rtdb']}/tenants/{tenant}/settings/storage_policy.json"
        answer = httpx.put(url, params={"ns": state.rtdb_namespace}, json=node, timeout=10, trust_env=False)
        assert answer.status_code == 200, answer.text


def _uv_for_make() -> str | None:
    """``make`` runs ``.tools/bin/uv`` of the project root; a git worktree has none of its own, so
    make is given the main checkout's (``UV=...``, which the Makefile lets the environment set)."""
    if (ROOT / ".tools" / "bin" / "uv").exists():
        return None
    common = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    candidate = Path(common).parent / ".tools" / "bin" / "uv" if common else None
    if candidate is None or not candidate.exists():
        skip_or_fail("no .tools/bin/uv: run `make bootstrap` first")
    return str(candidate)


def terminal_environment(home: Path) -> dict[str, str]:
    """A new terminal's environment: no venv active, none of the API's variables, no make of ours."""
    venv_bin = str(ROOT / ".venv" / "bin")
    dropped = ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "UV_PROJECT_ENVIRONMENT")
    api_prefixes = ("SUPABASE_", "FIREBASE_", "DATA_BACKEND", "DEFAULT_TENANT_ID", "APP_ENV", "STORAGE_")
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in dropped and not name.startswith(api_prefixes)
    }
    path = [entry for entry in environment.get("PATH", "").split(os.pathsep) if entry != venv_bin]
    environment["PATH"] = os.pathsep.join(path)
    environment[HOME_VARIABLE] = str(home)
    # A terminal's width, so tables wrap as in the runbook whatever runs the test.
    environment["COLUMNS"] = "120"
    uv = _uv_for_make()
    if uv is not None:
        environment["UV"] = uv
    return environment


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[LocalStack]:
    if not (ROOT / ".venv" / "bin" / "activate").exists():
        skip_or_fail("no .venv: run `make bootstrap` first")
    paths = HarnessPaths(tmp_path / "harness-home")
    stack = LocalStack(paths, terminal_environment(paths.home))
    try:
        started = stack.harness("up", "--runtime", "native", "--detach", "--backend", "rtdb")
        assert started.returncode == 0, started.stdout + started.stderr
        stack.assert_the_api_is_ours()
        yield stack
    finally:
        stopped = stack.harness("down")
        leftover = load(paths)
        if leftover is not None:
            if leftover.supervisor is not None:
                processes.stop(leftover.supervisor, ladder=processes.terminate(60))
            NativeRuntime(paths).down(leftover)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def _checkpoints() -> list[Path]:
    return sorted(CHECKPOINTS.glob("*")) if CHECKPOINTS.is_dir() else []


# --- Running the blocks as a terminal would.

_RUN_BLOCK = """\
source "$1"
cd "$2" || exit 97
source "$3"
status=$?
export -p > "$4"
exit $status
"""


class Terminal:
    """One terminal session: each block runs in a new bash that starts with the previous block's exports."""

    def __init__(self, environment: Mapping[str, str], work: Path) -> None:
        self.work = work
        self.exports = work / "exports.sh"
        self.exports.write_text("")
        self.script = work / "run-block.sh"
        self.script.write_text(_RUN_BLOCK)
        self.environment = dict(environment)
        self.bash = shutil.which("bash", path=environment.get("PATH")) or "/bin/bash"

    def run(self, block: Block, number: int) -> subprocess.CompletedProcess[str]:
        commands = self.work / f"block-{number:02d}.sh"
        commands.write_text(block.commands)
        after = self.work / f"exports-{number:02d}.sh"
        done = subprocess.run(
            [self.bash, str(self.script), str(self.exports), str(ROOT), str(commands), str(after)],
            env=self.environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
        if after.exists():
            self.exports = after
        return done


# What the tenants' users do while the runbook is followed, as its outputs say, keyed by the block
# they come before.
UserAction = Callable[[LocalStack], None]


def _tenants_save_in_rtdb(stack: LocalStack) -> None:
    stack.save_policy("acme", {"operational": "local", "sync": {"enabled": True}})
    stack.save_policy("globex", {"operational": "cloud", "sync": {"enabled": False}})
    stack.save_policy("initech", {"operational": "local", "sync": {"enabled": False}})


def _initech_saves_before_the_flip_and_everyone_reads(stack: LocalStack) -> None:
    # In RTDB after the backfill: shadow reads see Supabase's older copy, the flip's catch-up copies it.
    stack.save_policy("initech", {"sync": {"enabled": True}}, patch=True)
    for tenant in ("acme", "globex", "initech"):
        stack.read_policy(tenant)
    stack.wait_for_api_log('"tenant_id": "initech"', SHADOW_MISMATCH)


def _globex_saves_after_the_flip_and_everyone_reads(stack: LocalStack) -> None:
    # In Supabase: RTDB's copy is older from now on, which verify and the shadow reads show.
    stack.save_policy("globex", {"operational": "local"}, patch=True)
    for tenant in ("acme", "globex", "initech"):
        stack.read_policy(tenant)
    stack.wait_for_api_log('"tenant_id": "globex"', SHADOW_MISMATCH)


def _a_hand_edited_node(stack: LocalStack) -> None:
    stack.put_rtdb_node(
        "hooli", {"secrets": "local-only", "operational": "hybrid", "sync": {"enabled": True}}
    )


def _hooli_saves_once(stack: LocalStack) -> None:
    # Through the API, which reads the node leniently and writes a valid one.
    stack.save_policy("hooli", {"operational": "local", "sync": {"enabled": True}})


def users_before(block: Block, seen: set[str]) -> UserAction | None:
    """The users' writes due before ``block``, once each."""
    due: list[tuple[str, bool, UserAction]] = [
        ("seed", "make cutover-plan" in block.commands, _tenants_save_in_rtdb),
        (
            "before-flip",
            "flip --backend supabase" in block.commands,
            _initech_saves_before_the_flip_and_everyone_reads,
        ),
        ("after-flip", "harness logs api" in block.commands, _globex_saves_after_the_flip_and_everyone_reads),
        ("hand-edited", block.heading == WRONG_SECTION, _a_hand_edited_node),
        (
            "repaired",
            block.heading == WRONG_SECTION
            and "cutover-backfill" in block.commands
            and "# exits" not in block.commands,
            _hooli_saves_once,
        ),
    ]
    for name, now, action in due:
        if now and name not in seen:
            seen.add(name)
            return action
    return None


@pytest.mark.integration
def test_the_runbooks_local_commands_work_as_written(local_stack: LocalStack, tmp_path: Path) -> None:
    blocks = walkthrough(RUNBOOK.read_text())
    assert blocks, "the runbook has no local walk-through"
    # The walk-through's backfills run in the project root, as written, and keep a checkpoint there
    # while they run: one left by somebody's interrupted backfill would be resumed (or removed).
    if _checkpoints():
        skip_or_fail(f"a backfill checkpoint is in {CHECKPOINTS}: finish or remove that backfill first")
    terminal = Terminal(local_stack.environment, tmp_path)
    seen: set[str] = set()
    for number, block in enumerate(blocks):
        action = users_before(block, seen)
        if action is not None:
            action(local_stack)
        done = terminal.run(block, number)
        printed = done.stdout + done.stderr
        transcript = f"{block}\n--- exit {done.returncode}; printed:\n{printed}"
        assert done.returncode == block.expected_exit, transcript
        missing = missing_lines(block.expected_output, printed)
        assert not missing, "not printed: " + shlex.join(missing) + "\n" + transcript
    assert seen == {"seed", "before-flip", "after-flip", "hand-edited", "repaired"}, (
        "a step the users act around is gone"
    )
    assert local_stack.state.data_backend == "rtdb", "the walk-through ends rolled back"
    assert not _checkpoints(), "every backfill of the walk-through ran to its end"
