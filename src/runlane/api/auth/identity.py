"""Who is calling: the result of authentication (a failure is runlane.errors.AuthError)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from starlette.requests import Request


@dataclasses.dataclass(frozen=True)
class Identity:
    """An authenticated caller. `identity` owns the rows it creates.

    Also the `ctx.user` that langgraph_sdk authorization handlers receive: it has
    the BaseUser protocol's properties and reads like the dict a handler returned."""

    identity: str
    permissions: tuple[str, ...] = ()
    display_name: str | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_authenticated(self) -> bool:
        return True

    def _fields(self) -> dict[str, Any]:
        return {**self.extra, "identity": self.identity, "permissions": list(self.permissions),
                "display_name": self.display_name or self.identity, "is_authenticated": True}

    def __getitem__(self, key: str) -> Any:
        return self._fields()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields()

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())


class Authenticator(Protocol):
    """One way of establishing who calls. `scheme` names it in WWW-Authenticate."""

    scheme: str

    async def authenticate(self, request: Request) -> Identity: ...


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def permissions_of(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())  # an OAuth `scope` claim: space-separated
    if isinstance(value, Sequence):
        return tuple(str(v) for v in value)
    return ()
