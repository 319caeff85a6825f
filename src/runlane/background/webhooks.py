"""Webhook delivery: POST a finished run to the URL it was created with.

Delivery never blocks a run or its settlement: the run's row only says a delivery is
owed (`webhook_state`, see store/webhook_queue.py), and this sender, one per worker,
claims due deliveries and POSTs them in tasks of their own. It wakes when a run
ends on this worker, when a retry becomes due, and every `poll_seconds` to pick up
deliveries owed by runs that ended elsewhere (a worker that died mid-delivery, a
reaped run, a restart).

- The body is the run as `GET /runs` shows it, plus `values` (the thread's state
  after the run) and `webhook_sent_at`, as the LangGraph server sends it.
- A 2xx answer delivers it. A connection failure, a timeout, a 5xx, 408 or 429 is
  retried with exponential backoff (`backoff`, doubling, capped at `max_backoff`),
  `max_attempts` attempts in all; any other answer fails it at once (the receiver
  refused it; retrying would not change that). Outcomes are logged.
- A stateless run whose thread is deleted on completion keeps its thread until the
  delivery is over (the payload's values come from it); then the thread goes.
- Where it may go: the webhook policy (runlane.webhook_policy), checked again at
  delivery, after DNS and on every redirect hop (webhook_transport.py). A URL the
  policy refuses is not posted to: the delivery fails at once, and the log says why.
- With a secret configured, every attempt is signed (X-Runlane-Signature: t=<unix>,
  v1=<hex HMAC-SHA256 of "<t>." + body>); configured headers go with every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from runlane.background.webhook_transport import PolicyTransport
from runlane.backoff import Backoff
from runlane.loop_task import cancel_and_wait
from runlane.observability import metrics
from runlane.records import Run
from runlane.serde import JSONObject, dumps, utcnow
from runlane.store.webhook_queue import DELIVERED, FAILED, WebhookQueue
from runlane.webhook_policy import (
    SIGNATURE_HEADER,
    Resolver,
    WebhookConfig,
    WebhookRefused,
    sign,
    system_resolve,
)
from runlane.wire import run_body

log = logging.getLogger("runlane.webhooks")

RETRIED_STATUSES = frozenset({408, 429})
# Redirects followed per attempt (each hop checked against the policy).
MAX_REDIRECTS = 5


def webhook_payload(run: Run, values: Any,
                    allowed_fields: frozenset[str] | None = None) -> JSONObject:
    """What the receiver gets: the run, the thread's values, when it was sent
    (only `allowed_fields`, when the configuration names them)."""
    body = run_body(run)
    body["values"] = values
    body["webhook_sent_at"] = utcnow().isoformat()
    if allowed_fields is not None:
        body = {key: value for key, value in body.items() if key in allowed_fields}
    return body


class WebhookSender:
    def __init__(
        self,
        queue: WebhookQueue,
        *,
        wakeup: asyncio.Event,
        timeout: float = 10.0,
        max_attempts: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        poll_seconds: float = 2.0,
        concurrency: int = 16,
        after_delivery: Callable[[Run], Awaitable[None]] | None = None,
        config: WebhookConfig | None = None,
        resolve: Resolver = system_resolve,
    ) -> None:
        self.queue = queue
        self.config = config or WebhookConfig()
        self.resolve = resolve
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        # Called once a delivery is over (delivered or failed) on this worker.
        self.after_delivery = after_delivery
        # Set by whoever ends a run that owes a delivery (and by this sender itself).
        self._wakeup = wakeup
        self._loop_task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._backoff = Backoff("claiming webhook deliveries", log)

    async def start(self) -> None:
        # httpx logs every request at INFO; the outcome lines below say what matters.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._client = httpx.AsyncClient(
            timeout=self.timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
            transport=PolicyTransport(self.config, self.resolve))
        self._loop_task = asyncio.create_task(self._loop(), name="runlane-webhooks")
        self.wake()

    async def stop(self) -> None:
        """Stop sending. Deliveries cut short keep their claim, which expires: the next
        worker (or the next start) sends them again."""
        await cancel_and_wait(self._loop_task)
        for task in list(self._deliveries):
            task.cancel()
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=2)
        if self._client is not None:
            await self._client.aclose()

    def wake(self) -> None:
        self._wakeup.set()

    @property
    def claim_seconds(self) -> float:
        # Longer than one attempt can take (the client's timeout bounds it); then the
        # delivery is someone else's: a crashed worker's delivery is retried after this.
        return self.timeout * 2 + 1.0

    async def _loop(self) -> None:
        while True:
            delay = self.poll_seconds
            try:
                free = self.concurrency - len(self._deliveries)
                if free > 0:  # (when full, a finishing delivery wakes this loop)
                    now = utcnow()
                    claimed = await self.queue.claim(
                        now, now + datetime.timedelta(seconds=self.claim_seconds), free)
                    for run, values in claimed:
                        task = asyncio.create_task(self._deliver(run, values))
                        self._deliveries.add(task)
                        task.add_done_callback(self._delivery_done)
                    if len(claimed) == free:
                        delay = 0.0  # more may be due
                    due = await self.queue.next_due()
                    self._backoff.succeeded()
                    if due is not None:
                        # At least a moment: a due row another worker is claiming right
                        # now is skipped by our claim, and must not make this spin.
                        delay = min(delay, max((due - utcnow()).total_seconds(), 0.05))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database is away: retry, backing off
                # Not woken meanwhile (runs ending, deliveries done): each wake-up
                # would be one more failed claim.
                await self._backoff.wait(exc)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)
            self._wakeup.clear()

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        self.wake()  # a slot is free

    async def _deliver(self, run: Run, values: Any) -> None:
        run_id, attempt, url = run.run_id, run.webhook_attempts, run.webhook
        assert url is not None  # only a run created with a webhook owes a delivery
        assert self._client is not None
        problem: str | None = None
        retry = True
        body = dumps(webhook_payload(run, values, self.config.allowed_fields))
        try:
            answer = await self._client.post(url, content=body, headers=self.headers(body))
        except WebhookRefused as exc:
            # The policy forbids it (changed since the run was created, a DNS answer
            # that now points inside, a redirect inward): never retried.
            problem, retry = f"not sent: {exc.reason}", False
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            if answer.is_success:
                problem = None
            else:
                problem = f"answered {answer.status_code}"
                retry = answer.status_code >= 500 or answer.status_code in RETRIED_STATUSES
        extra = {"event": "webhook", "run_id": run_id, "thread_id": run.thread_id,
                 "attempt": attempt}
        try:
            if problem is None:
                metrics.webhook_attempted("delivered")
                if await self.queue.finish(run_id, attempt, DELIVERED):
                    log.info("run %s: webhook delivered (attempt %d)", run_id, attempt,
                             extra={**extra, "webhook_state": DELIVERED})
                    await self._over(run)
                return
            if retry and attempt < self.max_attempts:
                metrics.webhook_attempted("retry")
                wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                if await self.queue.retry_later(
                        run_id, attempt, utcnow() + datetime.timedelta(seconds=wait)):
                    log.warning("run %s: webhook attempt %d failed (%s); retrying in %.1fs",
                                run_id, attempt, problem, wait,
                                extra={**extra, "webhook_state": "pending"})
                    self.wake()
                return
            metrics.webhook_attempted("failed")
            if await self.queue.finish(run_id, attempt, FAILED):
                log.error("run %s: webhook failed after %d attempt(s) (%s); giving up",
                          run_id, attempt, problem, extra={**extra, "webhook_state": FAILED})
                await self._over(run)
        except Exception as exc:  # noqa: BLE001 - the claim expires and the delivery is retried
            log.warning("run %s: recording the webhook outcome failed (%s)", run_id, exc)

    def headers(self, body: bytes) -> dict[str, str]:
        """The configured headers, the content type, and the signature (when a
        secret is configured), fresh for each attempt."""
        headers = dict(self.config.headers)
        headers["Content-Type"] = "application/json"
        if self.config.secret:
            headers[SIGNATURE_HEADER] = sign(self.config.secret, int(time.time()), body)
        return headers

    async def _over(self, run: Run) -> None:
        if self.after_delivery is not None:
            try:
                await self.after_delivery(run)
            except Exception as exc:  # noqa: BLE001 - a cleanup hook must not stop deliveries
                log.warning("run %s: cleanup after its webhook failed (%s)", run.run_id, exc)
