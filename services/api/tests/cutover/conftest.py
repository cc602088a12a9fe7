"""The cutover tool's tests: the engine on in-memory stores (``cutover_fakes``), the command line,
and (``test_cutover_real_stores.py``) the real stores on the harness's PostgreSQL and RTDB emulator."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# --import-mode=importlib keeps test directories off sys.path; the fakes live here.
sys.path.insert(0, str(Path(__file__).parent))

from cutover_fakes import FakeStore


@pytest.fixture
def rtdb() -> FakeStore:
    return FakeStore("rtdb")


@pytest.fixture
def supabase() -> FakeStore:
    return FakeStore("supabase")


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints (.cutover/) and .env are looked up in the working directory."""
    monkeypatch.chdir(tmp_path)
