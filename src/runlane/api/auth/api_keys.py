"""API keys: each key stands for one identity.

Keys come from `RUNLANE_API_KEYS` / `--api-keys` (`alice=key1,bob=key2`) and/or a
file (`--api-keys-file`, one `identity=key` per line, `#` comments). Only SHA-256
digests are kept in memory, and a presented key is compared with every known one
in constant time (hmac.compare_digest, no early exit), so neither the comparison
nor the number of matching leading characters shows in the response time.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from starlette.requests import Request

from runlane.api.auth.identity import Identity, bearer_token
from runlane.errors import ApiKeyError, AuthError

HEADER = "x-api-key"


def parse_keys(text: str, where: str, separator: str) -> dict[str, str]:
    """{key: identity} from `identity=key` entries separated by `separator`."""
    keys: dict[str, str] = {}
    for number, raw in enumerate(text.split(separator), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        identity, eq, key = entry.partition("=")
        identity, key = identity.strip(), key.strip()
        if not eq or not identity or not key:
            raise ApiKeyError(f"{where}: entry {number} is not 'identity=key'")
        if len(key) < 16:
            raise ApiKeyError(f"{where}: the key of {identity!r} is shorter than 16 characters; "
                              "use a long random key (e.g. `openssl rand -hex 32`)")
        if key in keys and keys[key] != identity:
            raise ApiKeyError(f"{where}: one key is given to both {keys[key]!r} and {identity!r}")
        keys[key] = identity
    return keys


def load_keys(inline: str | None, file: str | None) -> dict[str, str]:
    keys: dict[str, str] = {}
    if inline:
        keys.update(parse_keys(inline, "RUNLANE_API_KEYS / --api-keys", ","))
    if file:
        path = Path(file)
        if not path.is_file():
            raise ApiKeyError(f"API key file {path} does not exist")
        keys.update(parse_keys(path.read_text(), str(path), "\n"))
    if not keys:
        raise ApiKeyError("--auth api-key needs keys: set RUNLANE_API_KEYS='alice=KEY,...' or "
                          "--api-keys-file FILE (one identity=key per line)")
    return keys


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class ApiKeys:
    scheme = "ApiKey"

    def __init__(self, keys: dict[str, str]) -> None:
        self._digests = [(_digest(key), identity) for key, identity in keys.items()]

    def identity_of(self, presented: str) -> str | None:
        digest = _digest(presented)
        found: str | None = None
        for known, identity in self._digests:  # all of them, whatever matches
            if hmac.compare_digest(digest, known):
                found = identity
        return found

    async def authenticate(self, request: Request) -> Identity:
        presented = request.headers.get(HEADER) or bearer_token(
            request.headers.get("authorization"))
        if not presented:
            raise AuthError("authentication required: send an API key in the X-Api-Key "
                            "header (or Authorization: Bearer <key>)")
        identity = self.identity_of(presented)
        if identity is None:
            raise AuthError("invalid API key")
        return Identity(identity)
