"""Render the files under ``deploy/tasks/templates/`` (Jinja2) and ship the host scripts.

The deploys upload the rendered text with ``files.put`` (pyinfra compares checksums, so an unchanged
file is no change), and the tests render the very same way to check the output.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
HOSTSCRIPTS_DIR: Final = Path(__file__).parent / "hostscripts"

_ENVIRONMENT: Final = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR)),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # noqa: S701 - configuration files, not HTML
)


def render(template: str, **context: Any) -> str:
    """The template ``templates/<template>`` filled with ``context``; a missing variable is an error."""
    return _ENVIRONMENT.get_template(template).render(**context)


def rendered(template: str, **context: Any) -> StringIO:
    """``render`` as a file object for ``files.put``."""
    return StringIO(render(template, **context))


def hostscript(name: str) -> str:
    """The path of a script shipped as-is to the hosts."""
    return str(HOSTSCRIPTS_DIR / name)
