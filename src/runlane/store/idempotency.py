"""Idempotency-Key: a retried creation answers what the first one created.

A key is claimed inside the transaction that creates its object, by one statement:
INSERT its row, or, when the (owner, key) row exists but has expired, take it over
(ON CONFLICT DO UPDATE ... WHERE expired). A statement that returns no row lost to
a live key: the creation does not happen, and the caller answers with what the key
names. The primary key decides races, on PostgreSQL across workers too (a second
inserter waits for the first transaction, then sees its row), so concurrent
duplicates create exactly one object. A creation that fails (404, 409, 422) rolls
its claim back with it: the key stays free for a retry that may succeed.

A key names the object, not a copy of the answer: a retry reads the run (or its
rollback tombstone) as it is now, so a retry after a cancel answers the cancelled run.
"""

from __future__ import annotations

import dataclasses
import datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from runlane.errors import BadRequest
from runlane.owners import Owner
from runlane.serde import JSONObject
from runlane.store.schema import idempotency_keys as keys


@dataclasses.dataclass(frozen=True)
class IdempotencyKey:
    """One request's key: whose, which, the request's fingerprint, how long it lives."""

    owner: Owner
    key: str
    fingerprint: str
    ttl: datetime.timedelta

    @property
    def owner_column(self) -> str:
        return self.owner or ""


class KeyReused(BadRequest):
    """The same key with another request (422)."""


def claim(conn: Connection, key: IdempotencyKey, target: JSONObject,
          now: datetime.datetime) -> JSONObject | None:
    """Claim `key` for `target` in the caller's transaction: None when claimed (the
    caller goes on creating `target`), else the live key's target (the caller answers
    that instead). KeyReused when the live key was used for another request."""
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        # The same `insert` API as SQLite's, under another type:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    row = {"owner": key.owner_column, "key": key.key, "fingerprint": key.fingerprint,
           "target": target, "created_at": now, "expires_at": now + key.ttl}
    inserting = insert(keys).values(**row)
    statement = inserting.on_conflict_do_update(
        index_elements=[keys.c.owner, keys.c.key],
        set_={name: inserting.excluded[name] for name in
              ("fingerprint", "target", "created_at", "expires_at")},
        # Only an expired key is taken over; a live one is left as it is.
        where=keys.c.expires_at <= now,
    ).returning(keys.c.key)
    if conn.execute(statement).first() is not None:
        return None
    existing = conn.execute(sa.select(keys.c.fingerprint, keys.c.target).where(
        keys.c.owner == key.owner_column, keys.c.key == key.key)).first()
    if existing is None:  # swept between the two statements: nothing lives under it
        return claim(conn, key, target, now)
    if existing.fingerprint != key.fingerprint:
        raise KeyReused(
            f"Idempotency-Key {key.key!r} was already used for a different request "
            "(another route or body); a retry must repeat the request exactly, and a new "
            "request needs a new key")
    target_found: JSONObject = existing.target
    return target_found


def sweep(conn: Connection, now: datetime.datetime, limit: int) -> int:
    """Delete up to `limit` expired keys; how many went."""
    expired = sa.select(keys.c.owner, keys.c.key).where(
        keys.c.expires_at <= now).limit(limit)
    result = conn.execute(keys.delete().where(
        sa.tuple_(keys.c.owner, keys.c.key).in_(expired)))
    return int(result.rowcount or 0)


def next_expiry(conn: Connection) -> datetime.datetime | None:
    """The earliest expiry of any key (an index lookup)."""
    value = conn.scalar(sa.select(sa.func.min(keys.c.expires_at)))
    if isinstance(value, str):  # SQLite's min() loses the column type
        value = datetime.datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    result: datetime.datetime | None = value
    return result
