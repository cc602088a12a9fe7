"""A path convertor that also matches control characters.

Starlette's ``path`` convertor is ``.*``, which stops at a newline, so ``/settings/a%0Ab`` would be an
unknown route (404) instead of an invalid settings path (400 "Invalid path segment"). Starlette keeps
convertors in one registry; registering under our own name is idempotent and affects nothing else.
"""

from __future__ import annotations

from typing import Final

from starlette.convertors import Convertor, register_url_convertor

CONVERTOR_NAME: Final = "settings_path"


class SettingsPathConvertor(Convertor[str]):
    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor(CONVERTOR_NAME, SettingsPathConvertor())
