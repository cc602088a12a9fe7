"""The programs the project runs, read from its code, and the table that says what provides each.

``.ci/programs.tsv`` names every external program the code, the tests, the Makefile and ``.ci/run``
run, with its provider (``docs/runbooks/bootstrap-check.md``). ``make bootstrap`` installs from it,
so a program the table lacks is a program a fresh machine lacks. This module finds the programs in
the sources statically, so ``harness/tests/test_programs_table.py`` can fail on one that is not in
the table, and asks ``dpkg`` which package provides a program on this machine.

What the scanner sees in Python: ``shutil.which("x")`` and ``require_tool("x", ...)``; the first
element of a command given as a list or tuple literal to a call named like ``run``, ``Popen``,
``spawn``, ``check_output`` (directly or through a variable assigned such a literal in the same
module) or as ``command=``; and absolute paths into a ``bin`` directory. A first element may be a
string, ``str(bin_dir / "x")`` or ``which("x") or "x"``. In shell (the Makefile's recipes and
``$(shell ...)``, ``.ci/run``, ``*.sh``): the first word of each simple command, through ``$(...)``,
``<(...)``, make variables, ``sudo``/``exec`` and ``uv run``. A command assembled at run time from
parts the scanner cannot see is not found: name it with a literal.
"""

from __future__ import annotations

import ast
import csv
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(".ci/programs.tsv")
HEADER = ("program", "provider", "package", "used_by")
PROVIDERS = frozenset({"ci", "apt", "base", "tools", "uv", "npm", "optional"})
DEBIAN_PROVIDERS = frozenset({"ci", "apt", "base"})
# Sources that run programs on this machine (deploy/ runs its commands on the servers it deploys).
PYTHON_ROOTS = ("services", "harness", "supabase", "loadtests", "conftest.py")
SHELL_FILES = ("Makefile", ".ci/run")
SHELL_SCRIPT_ROOTS = ("services", "harness")
SKIPPED_DIRECTORIES = frozenset({".venv", "node_modules", "__pycache__", "build", ".tools", ".git"})

_SPAWNER = re.compile(r"^(_?run\w*|Popen|call|check_call|check_output|spawn|create_subprocess_exec|exec\w*)$")
_BIN_PATH = re.compile(r"^/(?:usr/)?(?:local/)?(?:lib/postgresql/\d+/)?s?bin/([\w.+-]+)$")
_PROGRAM_WORD = re.compile(r"^[A-Za-z0-9_.][\w.+-]*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*(\[[^\]]*\])?\+?=")
_SHELL_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "case", "esac", "!", "time", "in"}
)
# Skipped with the rest of their simple command: builtins, and words that start a non-command.
_SHELL_BUILTINS = frozenset(
    {
        ".", ":", "[", "[[", "]]", "break", "cd", "command", "continue", "echo", "eval", "exit", "export",
        "false", "for", "local", "printf", "read", "return", "set", "shift", "source", "test", "trap",
        "true", "unset", "wait",
    }
)  # fmt: skip
# Calls whose first argument names a program: shutil.which and the tests' require_tool.
_LOOKUPS = frozenset({"which", "require_tool"})
_REDIRECTION = re.compile(r"\d*(?:>>?|<)(?:&\d+|&-)?")
# exec is a builtin that runs the next word; the others are programs that do.
_BUILTIN_WRAPPERS = frozenset({"exec"})
_WRAPPERS = frozenset({"sudo", "env", "nohup", "setsid"})


@dataclass(frozen=True, slots=True)
class Row:
    program: str
    provider: str
    packages: tuple[str, ...]  # "a|b": installed is a; b is accepted where it already provides it
    used_by: str

    @property
    def package(self) -> str:
        return self.packages[0]


class TableError(ValueError):
    """The table is malformed."""


def load_table(path: Path) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    if reader.fieldnames != list(HEADER):
        raise TableError(f"{path}: the header must be {', '.join(HEADER)}, not {reader.fieldnames}")
    for record in reader:
        program, provider, package = record["program"], record["provider"], record["package"]
        if provider not in PROVIDERS or not program or not package or None in record.values():
            raise TableError(f"{path}: bad row {record}")
        if program in rows:
            raise TableError(f"{path}: {program} is listed twice")
        rows[program] = Row(program, provider, tuple(package.split("|")), record["used_by"])
    return rows


# -- Python -----------------------------------------------------------------------------------


def _call_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _program_of_path(text: str) -> str | None:
    match = _BIN_PATH.match(text)
    if match:
        return match.group(1)
    if "/" not in text and _PROGRAM_WORD.match(text):
        return text
    return None


def _program_of(node: ast.expr) -> str | None:
    """The program a command's first element names, when it can be read without running anything."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _program_of_path(node.value)
    if isinstance(node, ast.Call) and _call_name(node.func) in ("str", "which", "Path") and node.args:
        return _program_of(node.args[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        right = node.right
        if isinstance(right, ast.Constant) and isinstance(right.value, str):
            return Path(right.value).name or None
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            found = _program_of(value)
            if found:
                return found
    return None


def _first_element(node: ast.expr | None) -> ast.expr | None:
    if isinstance(node, ast.List | ast.Tuple) and node.elts and not isinstance(node.elts[0], ast.Starred):
        return node.elts[0]
    return None


def programs_in_python(source: str) -> set[str]:
    tree = ast.parse(source)
    literal_commands: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        value = getattr(node, "value", None)
        first = _first_element(value) if targets else None
        if first is not None:
            for target in targets:
                if isinstance(target, ast.Name):
                    literal_commands.setdefault(target.id, []).append(first)
    found: set[str] = set()

    def add(node: ast.expr | None) -> None:
        program = _program_of(node) if node is not None else None
        if program:
            found.add(program)

    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _BIN_PATH.match(node.value)
            if match:
                found.add(match.group(1))
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node.func)
        if name in _LOOKUPS and node.args:
            add(node.args[0])
        for keyword in node.keywords:
            if keyword.arg == "command":
                add(_first_element(keyword.value))
        if not _SPAWNER.match(name):
            continue
        given = [*node.args[:1], *(keyword.value for keyword in node.keywords if keyword.arg == "args")]
        command = given[0] if given else None
        if isinstance(command, ast.Name):
            for first in literal_commands.get(command.id, []):
                add(first)
        else:
            add(_first_element(command))
    return found


# -- shell and make -----------------------------------------------------------------------------


def _closing(text: str, start: int) -> int:
    """Index of the ``)`` that closes the ``(`` at ``start`` (or the end of the text)."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return len(text)


def expand_make(text: str, variables: Mapping[str, str], found: set[str], depth: int = 0) -> str:
    """Make's expansion of ``text``: ``$$`` is ``$``, ``$(VAR)`` its value, ``$(shell ...)`` is
    scanned (its programs go to ``found``) and expands to nothing, like ``$(if ...)``."""
    if depth > 20:
        return ""
    out: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith("$$", index):
            out.append("$")
            index += 2
        elif text.startswith("$(", index):
            end = _closing(text, index + 1)
            inner = text[index + 2 : end]
            index = end + 1
            if inner.startswith("shell "):
                found |= programs_in_shell(expand_make(inner[6:], variables, found, depth + 1))
            elif inner in variables:
                out.append(expand_make(variables[inner], variables, found, depth + 1))
        elif text.startswith("$", index):
            index += 2  # automatic variables ($@, $<)
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def _substitutions(text: str, found: set[str]) -> str:
    """Scan ``$(...)``, ``$((...))`` and ``<(...)``, each replaced by nothing in the result."""
    out: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith("$((", index):
            end = _closing(text, index + 1)
            _substitutions(text[index + 3 : end - 1], found)  # arithmetic: only its own $(...)
            index = end + 1
        elif text.startswith(("$(", "<("), index):
            end = _closing(text, index + 1)
            found |= programs_in_shell(text[index + 2 : end])
            index = end + 1
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def programs_in_shell(text: str) -> set[str]:
    found: set[str] = set()
    functions = set(re.findall(r"^\s*([\w-]+)\s*\(\)", text, re.MULTILINE))
    text = text.replace("\\\n", " ")
    text = re.sub(r"^\s*#.*$", "", text, flags=re.MULTILINE)
    text = re.sub(r"'[^']*'", "", text)
    text = re.sub(r"\$\{[^}]*\}", "", text)
    text = _substitutions(text, found)
    text = re.sub(r'"[^"]*"', "", text)
    text = _REDIRECTION.sub(" ", text)
    for segment in re.split(r"&&|\|\||[;|&\n(){}]", text):
        found |= _command_of(segment.split())
    return found - functions


def _command_of(words: list[str]) -> set[str]:
    index = 0
    while index < len(words):
        word = words[index]
        if word in _SHELL_KEYWORDS or _ASSIGNMENT.match(word):
            index += 1
            continue
        if word in _SHELL_BUILTINS or word.startswith(("$", "-")):
            return set()
        program = Path(word).name
        if not _PROGRAM_WORD.match(program):
            return set()
        rest = words[index + 1 :]
        if program in _BUILTIN_WRAPPERS:
            return _command_of(rest)
        if program in _WRAPPERS:
            return {program} | _command_of(rest)
        if program == "uv" and rest[:1] == ["run"]:
            arguments = [word for word in rest[1:] if not word.startswith("-")]
            return {program} | _command_of(arguments[:1])
        return {program}
    return set()


def makefile_variables(text: str) -> dict[str, str]:
    variables: dict[str, str] = {}
    for match in re.finditer(r"^(?:export\s+)?([A-Za-z_][\w]*)\s*(?::=|\?=|=)\s*(.*)$", text, re.MULTILINE):
        variables[match.group(1)] = match.group(2)
    return variables


def programs_in_makefile(text: str) -> set[str]:
    """Programs of every recipe line, of ``$(shell ...)`` anywhere, and of ``SHELL``."""
    joined = text.replace("\\\n", " ")
    variables = makefile_variables(joined)
    found: set[str] = set()
    if "SHELL" in variables:
        found.add(Path(variables["SHELL"]).name)
    for line in joined.splitlines():
        if line.startswith("\t"):
            # A recipe line's own prefixes: @ (silent), - (ignore errors), + (run under -n).
            found |= programs_in_shell(expand_make(line.strip().lstrip("@-+"), variables, found))
        else:
            expand_make(line, variables, found)
    return found


# -- the project --------------------------------------------------------------------------------


def _files(root: Path, entries: Iterable[str], suffix: str) -> Iterator[Path]:
    for entry in entries:
        path = root / entry
        if path.is_file():
            yield path
            continue
        for directory, subdirectories, files in os.walk(path):
            subdirectories[:] = sorted(d for d in subdirectories if d not in SKIPPED_DIRECTORIES)
            for name in sorted(files):
                if name.endswith(suffix):
                    yield Path(directory) / name


def scan_project(root: Path) -> dict[str, set[str]]:
    """Every program the project's sources run, with the files that run it (relative to ``root``)."""
    found: dict[str, set[str]] = {}

    def record(programs: Iterable[str], path: Path) -> None:
        for program in programs:
            found.setdefault(program, set()).add(path.relative_to(root).as_posix())

    for path in _files(root, PYTHON_ROOTS, ".py"):
        record(programs_in_python(path.read_text()), path)
    for path in _files(root, SHELL_SCRIPT_ROOTS, ".sh"):
        record(programs_in_shell(path.read_text()), path)
    for name in SHELL_FILES:
        path = root / name
        if path.is_file():
            text = path.read_text()
            record(programs_in_makefile(text) if name == "Makefile" else programs_in_shell(text), path)
    return found


def unlisted(root: Path, table: Mapping[str, Row]) -> dict[str, set[str]]:
    """Programs the sources run that the table does not name, with where they are run."""
    return {program: files for program, files in scan_project(root).items() if program not in table}


# -- dpkg -----------------------------------------------------------------------------------------


def _dpkg_query(*args: str, partial: bool = False) -> str | None:
    """dpkg-query's output; ``None`` when it fails (``partial``: what it printed for the packages
    it knows, when asked about several)."""
    dpkg_query = shutil.which("dpkg-query")
    if dpkg_query is None:
        return None
    completed = subprocess.run(  # noqa: S603 - dpkg-query with our own arguments
        [dpkg_query, *args], capture_output=True, text=True, check=False, timeout=60
    )
    return completed.stdout if completed.returncode == 0 or partial else None


def locate(program: str, extra_directories: Iterable[Path] = ()) -> Path | None:
    """Where ``program`` is on this machine: on PATH, in ``extra_directories``, or (a shared
    library's soname) in a library directory."""
    if ".so" in program:
        for pattern in (f"/usr/lib/*/{program}", f"/lib/*/{program}", f"/usr/lib/{program}"):
            matches = sorted(glob.glob(pattern))
            if matches:
                return Path(matches[0])
        return None
    found = shutil.which(program)
    if found:
        return Path(found)
    for directory in extra_directories:
        candidate = directory / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _aliases(path: Path) -> list[Path]:
    """The path, what it resolves to, and each without ``/usr`` (dpkg knows merged-/usr files by
    the name their package ships)."""
    paths = [path, path.resolve()]
    aliases: list[Path] = []
    for candidate in paths:
        aliases.append(candidate)
        if candidate.parts[:2] == ("/", "usr"):
            aliases.append(Path("/", *candidate.parts[2:]))
    return aliases


def owners(path: Path) -> set[str]:
    """The Debian packages that ship ``path`` (under any of its names); empty when dpkg cannot tell."""
    found: set[str] = set()
    for alias in _aliases(path):
        output = _dpkg_query("-S", str(alias))
        if output is None:
            continue
        for line in output.splitlines():
            if line.startswith("diversion ") or ": " not in line:
                continue
            for package in line.split(": ", 1)[0].split(", "):
                found.add(package.split(":", 1)[0])
    return found


def installed(package: str) -> bool:
    output = _dpkg_query("-W", "-f=${Status}", package)
    return output is not None and "ok installed" in output


def dependencies(packages: Iterable[str], levels: int = 2) -> set[str]:
    """The installed packages that ``packages`` (installed) Depend or Pre-Depend on, ``levels`` deep:
    what ``apt-get install --no-install-recommends`` brings along with them."""
    found: set[str] = set()
    frontier = set(packages)
    for _ in range(levels):
        if not frontier:
            break
        output = _dpkg_query("-W", "-f=${Depends},${Pre-Depends}\n", *sorted(frontier), partial=True) or ""
        names = {re.split(r"[\s(:]", part.strip(), maxsplit=1)[0] for part in re.split(r"[,|]", output)}
        frontier = {name for name in names if name} - found
        found |= frontier
    return found


def priority(package: str) -> str:
    return (_dpkg_query("-W", "-f=${Priority}", package) or "").strip()


def provider_mismatch(row: Row, extra_directories: Iterable[Path] = ()) -> str | None:
    """Why dpkg disagrees with the row on this machine; ``None`` when it agrees or cannot tell."""
    path = locate(row.program, extra_directories)
    if path is None:
        return None
    shipped_by = owners(path)
    if not shipped_by or shipped_by & set(row.packages):
        return None
    # A package the named one depends on (psql's wrapper in postgresql-client-common, python3 in
    # python3-minimal) comes with it; a Recommends does not (pg_prove of postgresql-15-pgtap).
    if shipped_by & dependencies(package for package in row.packages if installed(package)):
        return None
    return (
        f"{row.program}: the table names {'|'.join(row.packages)}, "
        f"but {path} comes from {', '.join(sorted(shipped_by))} here"
    )
