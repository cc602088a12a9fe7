"""The OpenAPI pattern of ``{settings_path}`` accepts exactly the paths the parser accepts.

Both are built from the same constants (``settings_path.py``, ``model.py``); this holds them to one
meaning. The whole tree and ``storage_policy`` are valid paths that the pattern leaves to their own
operations. Byte lengths are beyond a pattern (the schema bounds characters with ``maxLength``), so
the comparison covers paths within ``MAX_PATH_BYTES``, where the length rule refuses nothing.
"""

from __future__ import annotations

import re
from typing import Final

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from botmox_api.errors import BadRequest
from botmox_api.settings_path import (
    JS_WHITESPACE,
    MAX_PATH_BYTES,
    MAX_SEGMENTS,
    SETTINGS_PATH_PATTERN,
    STORAGE_POLICY,
    normalise_settings_path,
)

PATTERN: Final = re.compile(SETTINGS_PATH_PATTERN)

# The pieces the rules are about, so that hypothesis meets every rule often; plus any text.
_PIECES: Final = st.sampled_from(
    [
        "/",
        "//",
        "settings",
        STORAGE_POLICY,
        "a",
        "x?y",
        "%3F",
        "50%",
        ".",
        "..",
        "#",
        "$",
        "[",
        "]",
        "\x00",
        "\x1f",
        "\x7f",
        "\x85",
        "\x1c",
        "é",
        "日本",
        *JS_WHITESPACE,
    ]
)
_SEGMENT: Final = st.sampled_from(["a", "settings", STORAGE_POLICY, "x?y", " b ", "\u00a0", "."])


@st.composite
def _many_segments(draw: st.DrawFn) -> str:
    """Paths around the segment limit, with or without the leading ``settings`` the parser drops."""
    count = draw(st.integers(MAX_SEGMENTS - 2, MAX_SEGMENTS + 2))
    segments = draw(st.lists(_SEGMENT, min_size=count, max_size=count))
    prefix = draw(st.sampled_from(["", "settings/", "/settings/", " settings//"]))
    return prefix + "/".join(segments) + draw(st.sampled_from(["", "/", " "]))


_PATHS: Final = st.one_of(
    st.lists(_PIECES, max_size=24).map("".join),
    _many_segments(),
    st.text(max_size=40),
)


def _parser_serves(path: str) -> bool:
    """Whether the generic operation serves ``path``: the parser accepts it, and it is neither the
    whole tree nor ``storage_policy`` (which have operations of their own)."""
    try:
        segments = normalise_settings_path(path)
    except BadRequest:
        return False
    return segments not in ((), (STORAGE_POLICY,))


@given(_PATHS)
@example("x?y")
@example("a/%3F/50%")
@example("settings/" + "/".join(["a"] * MAX_SEGMENTS))
@example("/".join(["a"] * (MAX_SEGMENTS + 1)))
@example(" / a / ")
@example("settings /")
@example("storage_policy /a")
@example("settings/settings/storage_policy")
def test_the_openapi_pattern_accepts_exactly_what_the_parser_accepts(path: str) -> None:
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return
    assert (PATTERN.search(path) is not None) == _parser_serves(path), repr(path)


async def test_the_document_states_the_parsers_pattern(fake_api: httpx.AsyncClient) -> None:
    document = (await fake_api.get("/api/v1/openapi.json")).json()
    operations = document["paths"]["/api/v1/settings/{settings_path}"]
    for operation in operations.values():
        (parameter,) = [p for p in operation["parameters"] if p["name"] == "settings_path"]
        assert parameter["schema"]["pattern"] == SETTINGS_PATH_PATTERN
        assert parameter["schema"]["maxLength"] == MAX_PATH_BYTES
