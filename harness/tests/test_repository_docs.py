"""The repository explains itself: its docs link only to files it has, and nothing it holds sends a
reader to a contract outside it (a clone has no ``../shared``; the contracts live in ``docs/contracts/``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# [text](target) in Markdown; the target up to a space, ')' or '#'.
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
# ``../shared/spec/...`` anywhere; in code, also a bare ``api-v1.md`` that a reader of a clone cannot find
# (a Markdown page beside the contract may link it by its bare name).
_OUTSIDE_CONTRACT = re.compile(r"shared/spec/")
_BARE_CONTRACT_IN_CODE = re.compile(r"(?<=[`(\s])api-v1\.md")


def _points_outside(path: Path, line: str) -> bool:
    return bool(
        _OUTSIDE_CONTRACT.search(line) or (path.suffix != ".md" and _BARE_CONTRACT_IN_CODE.search(line))
    )


def _tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *patterns], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name]


def _local_links(markdown: str) -> list[str]:
    return [t for t in _LINK.findall(markdown) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_the_link_finder_sees_relative_links_only() -> None:
    text = "[a](docs/api.md) [b](https://example.org/x) [c](../x.md#part) [d](mailto:x@y) [e](#top)"
    assert _local_links(text) == ["docs/api.md", "../x.md"]


def test_the_contract_pointer_check_tells_inside_from_outside() -> None:
    code, page = Path("gate.py"), Path("docs/contracts/stores.md")
    assert _points_outside(code, "see ``api-v1.md``, Envelope")
    assert _points_outside(page, "[contract](../shared/spec/api-v1.md)")
    assert not _points_outside(code, "see ``docs/contracts/api-v1.md``, Envelope")
    assert not _points_outside(page, "[the contract](api-v1.md)")


@pytest.mark.parametrize(
    "doc", _tracked("README.md", "docs/*.md", "docs/**/*.md"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_relative_link_of_a_doc_names_a_file_of_the_repository(doc: Path) -> None:
    broken = [
        target
        for target in _local_links(doc.read_text(encoding="utf-8"))
        if not (doc.parent / target).resolve().exists()
        or not (doc.parent / target).resolve().is_relative_to(ROOT)
    ]
    assert not broken, f"{doc.relative_to(ROOT)} links to what the repository does not hold: {broken}"


def test_no_tracked_file_points_to_a_contract_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _tracked()
        if path.is_file()
        and path != Path(__file__).resolve()  # its own examples
        and path.suffix in {".py", ".md", ".sql", ".toml", ".sh", ""}
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if _points_outside(path, line)
    ]
    assert not offenders, f"point these to docs/contracts/ instead: {offenders}"
