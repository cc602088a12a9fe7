"""Key and path validation, following RTDB's rules for child names."""

from __future__ import annotations

MAX_KEY_BYTES = 768
MAX_DEPTH = 32
_FORBIDDEN_KEY_CHARS = frozenset(".$#[]/")


class InvalidRequest(Exception):
    """A request RTDB answers with 400 and an ``{"error": ...}`` body."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name a child, or None when it can."""
    if not key:
        return "Key value can't be empty"
    for char in key:
        if char in _FORBIDDEN_KEY_CHARS or ord(char) < 32 or ord(char) == 127:
            return "Key value can't be empty or contain $ # [ ] / or ."
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "Key value is not valid UTF-8"
    if size > MAX_KEY_BYTES:
        return f"Key value is longer than {MAX_KEY_BYTES} bytes"
    return None


def check_key(key: str) -> None:
    problem = key_problem(key)
    if problem is not None:
        raise InvalidRequest(f"Invalid data; couldn't parse key {key[:100]!r}. {problem}")


def split_path(path: str) -> tuple[str, ...]:
    """The segments of a slash-separated path; empty segments are dropped like RTDB does."""
    segments = tuple(segment for segment in path.split("/") if segment)
    for segment in segments:
        if key_problem(segment) is not None:
            raise InvalidRequest("Invalid path: Invalid token in path")
    if len(segments) > MAX_DEPTH:
        raise InvalidRequest(f"Invalid path: deeper than {MAX_DEPTH} levels")
    return segments


def split_update_key(key: str) -> tuple[str, ...]:
    """The path a multi-location PATCH key names (``"a/b"``), relative to the PATCH location."""
    segments = tuple(segment for segment in key.split("/") if segment)
    if not segments:
        raise InvalidRequest(f"Invalid data; couldn't parse key {key[:100]!r}. Key value can't be empty")
    for segment in segments:
        check_key(segment)
    return segments


def is_prefix(prefix: tuple[str, ...], path: tuple[str, ...]) -> bool:
    return len(prefix) <= len(path) and path[: len(prefix)] == prefix


def path_string(segments: tuple[str, ...]) -> str:
    return "/" + "/".join(segments)
