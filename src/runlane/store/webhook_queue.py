"""Webhook deliveries as durable state on the run's row (`webhook_state`).

A run created with a `webhook` starts `pending`. Once the run is terminal, a worker
claims the delivery with one compare-and-set (`pending`/expired `sending` ->
`sending`, attempt + 1, claim held until `webhook_next_at`), so on a cluster exactly
one worker POSTs each attempt. The attempt's outcome is written fenced by the attempt
number: a worker whose claim expired (it was paused, or slow past the claim) cannot
overwrite what the next claimant decided. A claim left behind by a crash expires
and the delivery is claimed again: a delivery interrupted by a crash or a restart
is retried (so a receiver may, rarely, see a run twice; never zero times while
attempts remain).

States: `pending` (due once the run is terminal and `webhook_next_at` passed),
`sending` (claimed), `delivered`, `failed` (attempts exhausted, or the receiver
refused it with a 4xx).
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from runlane.contract import TERMINAL
from runlane.records import Run
from runlane.store.database import Database
from runlane.store.schema import runs, threads

P = sa.bindparam

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
_TERMINAL_VALUES = sorted(s.value for s in TERMINAL)


def _due() -> sa.ColumnElement[bool]:
    """A delivery that may be attempted now: its run is terminal, and it is pending
    and due, or its last claim expired."""
    return sa.and_(
        runs.c.status.in_(_TERMINAL_VALUES),
        sa.or_(
            sa.and_(runs.c.webhook_state == PENDING,
                    sa.or_(runs.c.webhook_next_at.is_(None), runs.c.webhook_next_at <= P("p_now"))),
            sa.and_(runs.c.webhook_state == SENDING, runs.c.webhook_next_at <= P("p_now")),
        ),
    )


_CANDIDATES = (
    sa.select(runs.c.run_id)
    .where(_due())
    .order_by(runs.c.seq)
    .limit(P("p_limit"))
    .with_for_update(skip_locked=True)
)
CLAIM = (
    runs.update()
    .where(runs.c.run_id.in_(_CANDIDATES))
    .where(_due())  # re-checked: the CAS itself decides, whatever was read
    .values(webhook_state=SENDING, webhook_next_at=P("p_claim_until"),
            webhook_attempts=runs.c.webhook_attempts + 1)
    .returning(*runs.c)
)
_MINE = (runs.c.run_id == P("p_run_id"), runs.c.webhook_state == SENDING,
         runs.c.webhook_attempts == P("p_attempt"))
FINISH = runs.update().where(*_MINE).values(webhook_state=P("p_state"), webhook_next_at=None)
RETRY_LATER = runs.update().where(*_MINE).values(webhook_state=PENDING,
                                                 webhook_next_at=P("p_next_at"))
NEXT_DUE = sa.select(sa.func.min(runs.c.webhook_next_at)).where(
    runs.c.status.in_(_TERMINAL_VALUES),
    runs.c.webhook_state.in_([PENDING, SENDING]),
)
SELECT_THREAD_VALUES = sa.select(threads.c["values"]).where(
    threads.c.thread_id == P("p_thread_id"))


def _aware(value: Any) -> Any:
    if isinstance(value, datetime.datetime) and value.tzinfo is None:  # SQLite
        return value.replace(tzinfo=datetime.UTC)
    return value


class WebhookQueue:
    """The store's side of webhook delivery: claim, finish, retry, when next."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, now: Any, claim_until: Any, limit: int) -> list[tuple[Run, Any]]:
        """Claim up to `limit` due deliveries: (the run after the claim, its thread's
        values) each."""
        params = {"p_now": now, "p_claim_until": claim_until, "p_limit": limit}

        def _tx(conn: Connection) -> list[tuple[Run, Any]]:
            claimed = [Run.from_row(r) for r in conn.execute(CLAIM, params)]
            return [(run, conn.scalar(SELECT_THREAD_VALUES, {"p_thread_id": run.thread_id}))
                    for run in claimed]

        return await self.db.run(_tx)

    async def finish(self, run_id: str, attempt: int, state: str) -> bool:
        """Record the attempt's final outcome (`delivered` or `failed`); False if the
        claim was lost meanwhile (another worker decides)."""
        params = {"p_run_id": run_id, "p_attempt": attempt, "p_state": state}

        def _tx(conn: Connection) -> bool:
            return conn.execute(FINISH, params).rowcount > 0

        return await self.db.run(_tx)

    async def retry_later(self, run_id: str, attempt: int, next_at: Any) -> bool:
        params = {"p_run_id": run_id, "p_attempt": attempt, "p_next_at": next_at}

        def _tx(conn: Connection) -> bool:
            return conn.execute(RETRY_LATER, params).rowcount > 0

        return await self.db.run(_tx)

    async def next_due(self) -> Any:
        """When the earliest waiting delivery (retry, or claim expiry) is due."""

        def _tx(conn: Connection) -> Any:
            return _aware(conn.scalar(NEXT_DUE))

        return await self.db.run(_tx)
