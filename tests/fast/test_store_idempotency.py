"""Idempotency-Key in the store, each backend: a live key answers what it created,
another request under it is refused, owners never share keys, failed creations free
the key, expired keys are taken over and swept, and concurrent duplicates (several
Store instances on PostgreSQL: separate workers' connection pools) admit one run."""

from __future__ import annotations

import asyncio
import datetime
import random

import pytest
import sqlalchemy as sa

from fast.support import admit_running, field, new_id, run_row, thread_row
from runlane.contract import CancelAction, CancelOutcome, RunStatus
from runlane.errors import BadRequest, Conflict
from runlane.owners import Owner
from runlane.serde import utcnow
from runlane.store import CreatedRun, Store
from runlane.store.idempotency import IdempotencyKey, KeyReused
from runlane.store.schema import idempotency_keys

DAY = datetime.timedelta(days=1)


def key_for(key: str, *, owner: Owner = None, fingerprint: str = "f" * 64,
            ttl: datetime.timedelta = DAY) -> IdempotencyKey:
    return IdempotencyKey(owner, key, fingerprint, ttl)


async def admit_keyed(store: Store, key: IdempotencyKey, thread_id: str | None = None, *,
                      owner: Owner = None, strategy: str = "enqueue") -> CreatedRun:
    """One request's admission: a fresh run id (as every request prepares one)."""
    thread_id = thread_id or new_id()
    return await store.create_run(
        run_row(thread_id, strategy=strategy), if_not_exists="create",
        thread_defaults=thread_row(thread_id), owner=owner, idempotency=key)


async def runs_on(store: Store, thread_id: str) -> list[str]:
    rows = await store.list_runs(thread_id, limit=100, offset=0, status=None)
    return [field(row, "run_id") for row in rows]


async def test_a_retry_answers_the_run_the_key_created(store: Store) -> None:
    key, thread_id = key_for(new_id()), new_id()
    first = await admit_keyed(store, key, thread_id)
    again = await admit_keyed(store, key, thread_id)
    assert not first.replayed and again.replayed
    assert field(again.run, "run_id") == field(first.run, "run_id")
    assert await runs_on(store, thread_id) == [field(first.run, "run_id")]


async def test_the_same_key_with_another_request_is_refused(store: Store) -> None:
    key, thread_id = new_id(), new_id()
    first = await admit_keyed(store, key_for(key), thread_id)
    with pytest.raises(KeyReused) as refused:
        await admit_keyed(store, key_for(key, fingerprint="0" * 64), thread_id)
    assert isinstance(refused.value, BadRequest) and refused.value.status_code == 422
    assert "different request" in str(refused.value)
    assert await runs_on(store, thread_id) == [field(first.run, "run_id")]


async def test_owners_never_share_a_key(store: Store) -> None:
    key = new_id()
    alice = await admit_keyed(store, key_for(key, owner="alice"), owner="alice")
    bob = await admit_keyed(store, key_for(key, owner="bob"), owner="bob")
    assert not alice.replayed and not bob.replayed
    assert field(alice.run, "run_id") != field(bob.run, "run_id")
    # Each owner's retry finds its own run, and a different body under the other
    # owner's key is no business of either.
    again = await admit_keyed(store, key_for(key, owner="bob"), owner="bob")
    assert field(again.run, "run_id") == field(bob.run, "run_id")


async def test_a_failed_creation_leaves_the_key_free(store: Store) -> None:
    busy = await admit_running(store)
    thread_id, key = field(busy, "thread_id"), key_for(new_id())
    with pytest.raises(Conflict):
        await admit_keyed(store, key, thread_id, strategy="reject")
    assert await store.next_idempotency_expiry() is None  # nothing was claimed
    created = await admit_keyed(store, key, new_id())
    assert not created.replayed


@pytest.mark.parametrize("action", [CancelAction.INTERRUPT, CancelAction.ROLLBACK])
async def test_a_retry_after_a_cancel_answers_the_cancelled_run(
        store: Store, action: CancelAction) -> None:
    key, thread_id = key_for(new_id()), new_id()
    first = await admit_keyed(store, key, thread_id)
    run_id = field(first.run, "run_id")
    cancelled = await store.cancel_run(thread_id, run_id, action, "user")
    assert cancelled.outcome is CancelOutcome.RECORDED
    again = await admit_keyed(store, key, thread_id)
    assert again.replayed and field(again.run, "run_id") == run_id
    assert field(again.run, "status") == RunStatus.INTERRUPTED.value
    # Never a new run: a rollback removed the run (its tombstone answers), and the
    # thread has no run at all.
    expected = [] if action is CancelAction.ROLLBACK else [run_id]
    assert await runs_on(store, thread_id) == expected


async def test_a_retry_after_the_thread_was_deleted_is_a_conflict(store: Store) -> None:
    key, thread_id = key_for(new_id()), new_id()
    await admit_keyed(store, key, thread_id)
    assert await store.delete_thread(thread_id) is not None
    with pytest.raises(Conflict, match="no longer exists"):
        await admit_keyed(store, key, thread_id)
    assert await store.get_thread(thread_id) is None


async def test_an_expired_key_is_taken_over_then_swept(store: Store) -> None:
    name = new_id()
    old = await admit_keyed(store, key_for(name, ttl=datetime.timedelta(seconds=-1)))
    fresh = await admit_keyed(store, key_for(name))
    assert not fresh.replayed
    assert field(fresh.run, "run_id") != field(old.run, "run_id")
    expired = key_for(new_id(), ttl=datetime.timedelta(seconds=-1))
    await admit_keyed(store, expired)
    assert await store.sweep_idempotency_keys(utcnow(), 100) == 1

    def keys_left(conn: sa.Connection) -> list[str]:
        return list(conn.scalars(sa.select(idempotency_keys.c.key)))
    assert await store.db.run(keys_left) == [name]


async def test_a_batch_key_answers_every_run_of_the_batch(store: Store) -> None:
    key = key_for(new_id())

    async def batch() -> list[CreatedRun]:
        items = []
        for _ in range(3):
            thread_id = new_id()
            items.append((run_row(thread_id), thread_row(thread_id)))
        return await store.create_runs(items, idempotency=key)
    first, again = await batch(), await batch()
    assert [one.replayed for one in first + again] == [False] * 3 + [True] * 3
    assert [field(one.run, "run_id") for one in again] == [
        field(one.run, "run_id") for one in first]


async def test_a_thread_key_answers_the_thread_it_created(store: Store) -> None:
    key = key_for(new_id())
    first = await store.create_thread(thread_row(new_id()), "raise", idempotency=key)
    again = await store.create_thread(thread_row(new_id()), "raise", idempotency=key)
    assert again.thread_id == first.thread_id
    with pytest.raises(KeyReused):
        await store.create_thread(thread_row(new_id()), "raise",
                                  idempotency=key_for(key.key, fingerprint="1" * 64))


@pytest.mark.parametrize("repetition", range(3))
async def test_concurrent_duplicates_admit_one_run(
        store: Store, request: pytest.FixtureRequest, repetition: int) -> None:
    """Many duplicates at once; on PostgreSQL through three Store instances (three
    workers' pools), each request after a random delay, so arrivals interleave."""
    stores = [store]
    if not store.db.is_sqlite:
        for _ in range(2):
            other = Store(store.url)
            await other.setup()
            stores.append(other)
    try:
        key, thread_id = key_for(new_id()), new_id()

        async def one(index: int) -> CreatedRun:
            await asyncio.sleep(random.uniform(0, 0.02))
            return await admit_keyed(stores[index % len(stores)], key, thread_id)
        created = await asyncio.gather(*(one(i) for i in range(24)))
    finally:
        for other in stores[1:]:
            await other.close()
    assert sum(not one.replayed for one in created) == 1
    assert len({field(one.run, "run_id") for one in created}) == 1
    assert await runs_on(store, thread_id) == [field(created[0].run, "run_id")]
