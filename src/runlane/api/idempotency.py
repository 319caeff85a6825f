"""The Idempotency-Key header of creation routes (see store/idempotency.py and
docs/run-contract.md): which key a request carries, and which request it is."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import Request

from runlane.errors import BadRequest
from runlane.service.runs import Idempotency

HEADER = "Idempotency-Key"
# What a key may be: printable ASCII, as HTTP headers carry it, of a sane length.
MAX_KEY_LENGTH = 255


def idempotency_of(request: Request, body: Callable[[], Any]) -> Idempotency | None:
    """The request's key with its fingerprint of `body()` (the body as parsed, called
    only when there is a key), None without the header; a key that is not one is a
    422 saying what is accepted."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    key = value.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(f"{HEADER}: {value!r} is not a key; accepted: 1 to "
                         f"{MAX_KEY_LENGTH} printable ASCII characters (a UUID is a good key)")
    return Idempotency(key, fingerprint(f"{request.method} {request.url.path}", body()))


def fingerprint(route: str, body: Any) -> str:
    """The request a key was first used for: its route and its body as parsed, every
    field spelled out (key order, whitespace, and a default sent or left out make no
    difference)."""
    canonical = orjson.dumps({"route": route, "body": body},
                             option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(canonical).hexdigest()
