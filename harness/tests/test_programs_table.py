"""``.ci/programs.tsv`` names every program the project runs, with the package that really provides it.

A program the code runs but the table lacks is one ``make bootstrap`` does not install: a fresh
machine fails where this one, with the program installed by hand, passes. These tests read the
sources (``harness.programs``), so they fail on the machine where the call is added, not later on
a fresh one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import playwright
import pytest

from harness import programs
from harness.fixtures.tools import require_tool
from harness.postgres.cluster import pg_bin_dir

ROOT = Path(__file__).resolve().parents[2]
TABLE = programs.load_table(ROOT / programs.TABLE)


def _listing(found: dict[str, set[str]]) -> str:
    lines = (f"  {program}: run by {', '.join(sorted(files))}" for program, files in sorted(found.items()))
    return "\n".join(lines)


def test_every_program_the_sources_run_is_in_the_table() -> None:
    missing = programs.unlisted(ROOT, TABLE)
    assert not missing, f"add these programs to {programs.TABLE} with their provider:\n{_listing(missing)}"


def test_the_scan_finds_the_programs_the_issue_named() -> None:
    # The scanner must keep seeing what the code is known to run, or the test above proves nothing.
    found = programs.scan_project(ROOT)
    named = ("initdb", "postgres", "pg_prove", "chromium", "caddy", "dockerd", "debootstrap", "supabase")
    for program in named:
        assert program in found, program
    assert "harness/src/harness/postgres/supabase.py" in found["pg_prove"]
    # make bench: the load generator and the pinning of the server, wrk and the services.
    assert "loadtests/bench/wrk.py" in found["wrk"]
    assert "loadtests/bench/proc.py" in found["taskset"]


def _copy_sources(target: Path) -> None:
    shutil.copytree(ROOT / "harness" / "src", target / "harness" / "src")
    (target / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", target / ".ci" / "run")
    shutil.copy(ROOT / "Makefile", target / "Makefile")


def test_a_call_planted_in_a_copy_of_the_sources_is_reported(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    assert programs.unlisted(tmp_path, TABLE) == {}
    module = tmp_path / "harness" / "src" / "harness" / "postgres" / "cluster.py"
    planted = '\n\ndef _planted() -> None:\n    subprocess.run(["frobnicate", "-q"])\n'
    module.write_text(module.read_text() + planted)
    makefile = tmp_path / "Makefile"
    makefile.write_text(makefile.read_text() + "\nplanted:\n\t@$(SUDO) grobble --all\n")
    assert programs.unlisted(tmp_path, TABLE) == {
        "frobnicate": {"harness/src/harness/postgres/cluster.py"},
        "grobble": {"Makefile"},
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('subprocess.run(["frobnicate", "--now"], check=True)', {"frobnicate"}),
        ('subprocess.Popen(("frobnicate",))', {"frobnicate"}),
        ('shutil.which("frobnicate")', {"frobnicate"}),
        ('require_tool("frobnicate", "apt-get install frobnicate")', {"frobnicate"}),
        ('command = ["frobnicate", "-x"]\nsubprocess.Popen(command)', {"frobnicate"}),
        ('processes.spawn([str(pg_bin_dir() / "frobnicate"), "-D", data])', {"frobnicate"}),
        ('_run([shutil.which("frobnicate") or "frobnicate", "--go"])', {"frobnicate"}),
        ('EXECUTABLE = "/usr/sbin/frobnicate"', {"frobnicate"}),
        ('ServiceSpec(command=("frobnicate", "-m", "x"))', {"frobnicate"}),
        ('subprocess.run(args=["frobnicate"])', {"frobnicate"}),
        # Not programs: a command of the running interpreter, data that merely looks like a list.
        ('subprocess.run([sys.executable, "-m", "x"])', set()),
        ('sorted(["frobnicate", "-x"])', set()),
        ('PATH = "/usr/bin:/bin"', set()),
    ],
)
def test_python_scanner(source: str, expected: set[str]) -> None:
    assert programs.programs_in_python(source) == expected


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("frobnicate --now", {"frobnicate"}),
        ('x=$(frobnicate -q) && echo "$x"', {"frobnicate"}),
        ('echo "at $(frobnicate -u)" >&2', {"frobnicate"}),
        ("while read -r a; do grobble $a; done < <(frobnicate)", {"frobnicate", "grobble"}),
        ('if [ -n "$x" ]; then FOO=1 sudo frobnicate; fi', {"sudo", "frobnicate"}),
        ("exec frobnicate 2>/dev/null", {"frobnicate"}),
        ("/usr/local/bin/frobnicate | grobble -c", {"frobnicate", "grobble"}),
        ("echo $(( $(frobnicate) - 1 ))", {"frobnicate"}),
        ("uv run --frozen frobnicate check .", {"uv", "frobnicate"}),
        ("fail() { echo no; }\nfail 'x; grobble'", set()),
        ("# frobnicate\ncd /tmp; export X=1; [[ -x y ]] || continue", set()),
        ('package=${package%%|*}; need+=("$package")', set()),
    ],
)
def test_shell_scanner(script: str, expected: set[str]) -> None:
    assert programs.programs_in_shell(script) == expected


def test_makefile_scanner_expands_variables_and_shell_calls() -> None:
    makefile = (
        "SHELL := /bin/bash\n"
        "TOOL ?= node_modules/.bin/frobnicate\n"
        "RUN := $(TOOL) run --frozen\n"
        "LIST := $(shell grobble -l | sort -u)\n"
        ".PHONY: go\n"
        "go: ## help text with echo and $(RUN)\n"
        "\t@for p in $(LIST); do \\\n"
        '\t  dpkg-query -W "$$p" || echo "$$(id -u)"; \\\n'
        "\tdone\n"
        "\t-$(RUN) thing\n"
    )
    assert programs.programs_in_makefile(makefile) == {
        "bash",
        "frobnicate",
        "grobble",
        "sort",
        "dpkg-query",
        "id",
    }


def test_the_table_is_well_formed_and_its_language_packages_are_pinned() -> None:
    package_json = json.loads((ROOT / "package.json").read_text())
    npm = {**package_json.get("dependencies", {}), **package_json.get("devDependencies", {})}
    locked = {package["name"] for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    for row in TABLE.values():
        if row.provider == "npm":
            assert row.package in npm, row
        if row.provider == "uv":
            assert row.package in locked, row


def test_the_table_rejects_an_unknown_provider_and_a_repeated_program(tmp_path: Path) -> None:
    table = tmp_path / "programs.tsv"
    header = "\t".join(programs.HEADER)
    table.write_text(f"{header}\ncaddy\tsnap\tcaddy\tx\n")
    with pytest.raises(programs.TableError, match="bad row"):
        programs.load_table(table)
    table.write_text(f"{header}\ncaddy\tapt\tcaddy\tx\ncaddy\tapt\tcaddy\ty\n")
    with pytest.raises(programs.TableError, match="twice"):
        programs.load_table(table)


def _needs_dpkg() -> None:
    require_tool("dpkg-query", "a Debian machine")


def test_dpkg_names_the_tables_package_wherever_it_can_tell() -> None:
    _needs_dpkg()
    mismatches = [
        message
        for row in TABLE.values()
        if row.provider in programs.DEBIAN_PROVIDERS
        and (message := programs.provider_mismatch(row, [pg_bin_dir()])) is not None
    ]
    assert not mismatches, "\n".join(mismatches)


def test_a_wrong_package_in_the_table_is_reported() -> None:
    _needs_dpkg()
    require_tool("pg_prove", "apt-get install -y libtap-parser-sourcehandler-pgtap-perl")
    wrong = programs.Row("pg_prove", "apt", ("postgresql-15-pgtap",), "")
    message = programs.provider_mismatch(wrong, [pg_bin_dir()])
    assert message is not None
    assert "libtap-parser-sourcehandler-pgtap-perl" in message


def test_the_package_of_a_library_row_is_found_by_its_soname() -> None:
    _needs_dpkg()
    # media-types is data only: it neither is nor depends on the package that ships the C library.
    wrong = programs.Row("libc.so.6", "base", ("media-types",), "")
    message = programs.provider_mismatch(wrong)
    assert message is not None
    assert "libc6" in message
    assert programs.provider_mismatch(programs.Row("libc.so.6", "base", ("libc6",), "")) is None


def test_a_package_the_named_one_depends_on_counts_and_a_recommends_does_not() -> None:
    _needs_dpkg()
    assert "postgresql-client-common" in programs.dependencies(["postgresql-client-15"])
    assert "libtap-parser-sourcehandler-pgtap-perl" not in programs.dependencies(["postgresql-15-pgtap"])


def test_base_rows_are_packages_every_debian_has() -> None:
    _needs_dpkg()
    for row in TABLE.values():
        if row.provider == "base":
            assert programs.priority(row.package) == "required", row


def test_bootstrap_installs_every_apt_row() -> None:
    make = require_tool("make", "apt-get install -y make")
    dry_run = subprocess.run(
        [make, "-n", "apt-packages"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    listed = dry_run.split("for p in ", 1)[1].split(";", 1)[0].split()
    assert set(listed) == {row.package for row in TABLE.values() if row.provider == "apt"}
    assert "libtap-parser-sourcehandler-pgtap-perl" in listed
    assert "libatomic1" in listed


def test_playwrights_bundled_node_driver_finds_its_libraries() -> None:
    # The driver is a binary inside the wheel: the scan cannot see what it links, and without a
    # library (libatomic.so.1 on plain Debian 12) every browser test dies with "Connection closed
    # while reading from the driver". Here the missing library is named.
    node = Path(playwright.__file__).parent / "driver" / "node"
    completed = subprocess.run([node, "--version"], capture_output=True, text=True, check=False, timeout=60)
    assert completed.returncode == 0, (
        f"{node} does not start; a library it needs is missing from {programs.TABLE}:\n{completed.stderr}"
    )
