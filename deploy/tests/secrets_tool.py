"""The host's secrets tool (a standalone script, not a package module) loaded for the tests."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from deploy.tasks.templating import hostscript


def load_secrets_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("botmox_secrets", hostscript("botmox_secrets.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["botmox_secrets"] = module
    spec.loader.exec_module(module)
    return module
