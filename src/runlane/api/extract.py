"""Thread search `extract`: `{alias: path}` picks values out of each thread found and
returns them under `extracted`. A path is dot notation for keys and brackets for list
indices, from a thread field: `values.messages[-1].content`, `metadata.user`."""

from __future__ import annotations

import re
from typing import Any

MAX_PATHS = 10
_ROOTS = ("values", "metadata", "config", "interrupts", "status", "thread_id",
          "created_at", "updated_at")
_STEP = re.compile(r"\.([^.\[\]]+)|\[(-?\d{1,9})\]")
_MISSING = object()


def parse_path(path: str) -> tuple[str, list[str | int]]:
    """The path's root field and its steps; ValueError saying what is wrong."""
    root = re.match(r"[a-z_]*", path).group(0)  # type: ignore[union-attr]  # `*` always matches
    if root not in _ROOTS:
        raise ValueError(f"extract path {path!r} must start with one of {list(_ROOTS)}")
    rest = path[len(root):]
    steps: list[str | int] = []
    position = 0
    while position < len(rest):
        match = _STEP.match(rest, position)
        if match is None:
            raise ValueError(f"extract path {path!r} is not keys joined by '.' with optional "
                             "[index] steps, e.g. 'values.messages[-1].content'")
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    return root, steps


def validate(extract: dict[str, Any]) -> dict[str, str]:
    if len(extract) > MAX_PATHS:
        raise ValueError(f"extract may name at most {MAX_PATHS} paths (got {len(extract)})")
    for alias, path in extract.items():
        if not alias:
            raise ValueError("extract aliases cannot be empty")
        if not isinstance(path, str):
            # ValueError, not TypeError: pydantic reports it as a 422
            raise ValueError(f"extract[{alias!r}] must be a path string, got {path!r}")
        parse_path(path)
    return extract


def extracted(body: dict[str, Any], extract: dict[str, str]) -> dict[str, Any]:
    """Each alias's value in `body` (a thread's wire shape); None where the path leads
    nowhere."""
    out: dict[str, Any] = {}
    for alias, path in extract.items():
        root, steps = parse_path(path)
        value: Any = body.get(root, _MISSING)
        for step in steps:
            value = _child(value, step)
            if value is _MISSING:
                break
        out[alias] = None if value is _MISSING else value
    return out


def _child(value: Any, step: str | int) -> Any:
    """`value[step]` where `value` is a list holding that index or a dict holding that
    key; _MISSING otherwise."""
    if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
        return value[step]
    if isinstance(step, str) and isinstance(value, dict) and step in value:
        return value[step]
    return _MISSING
