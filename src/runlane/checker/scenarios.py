"""Randomized concurrent scenarios. They act and record; invariants.py judges.

Each scenario drives a few runs of the sleepy-shaped graph (input
`{"steps": n, "delay": s}`: `n` ticks of `s` seconds each, one custom stream event
`{"tick": k}` per tick) on threads of its own, at random instants chosen to race
the server's own transitions: completion, start, the active run of a busy thread.
It ends by waiting (bounded) for every run it made to be terminal, recording the
final state, and taking a final snapshot of each of its threads.

Random choices come from a per-scenario `random.Random(f"{seed}:{index}")`, so a
seed reproduces the choices (not the server's timing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable
from typing import Any

from runlane.checker.history import (
    GONE,
    Exchange,
    History,
    Recorder,
    RollbackClaim,
    RunRecord,
    SpanClaim,
    StreamClaim,
)

STRATEGIES = ("reject", "interrupt", "rollback", "enqueue")
ACTIONS = ("interrupt", "rollback")
# Long enough that only a cancel ends it during a scenario; short enough that a
# cancel the server loses does not occupy it for long.
LONG = {"steps": 300, "delay": 0.05}
# Seconds an `interrupted` run with a rollback request is watched for its removal.
ROLLBACK_GRACE = 5.0


class Abort(Exception):
    """The scenario cannot go on (a setup request failed); what it recorded stands.
    The checker's own control flow (client-side), so not in runlane.errors' tree."""


@dataclasses.dataclass
class Context:
    recorder: Recorder
    history: History
    graph: str
    seed: int
    stuck_after: float  # seconds a run may take to end after a cancel / its nominal end
    timed_graph: str | None = None  # the `timed` graph, if the server serves it
    agent_graph: str | None = None  # a react_agent-shaped graph, if the server serves it
    webhook_url: str | None = None  # the checker's receiver (--webhooks)
    webhook_share: float = 0.5  # of the runs created, how many carry the webhook
    poll_interval: float = 0.05


def _duration(input: dict[str, Any]) -> float:
    return float(input.get("steps", 1)) * float(input.get("delay", 0.0))


class Session:
    """One scenario instance: its id, its random source and the actions it can take."""

    def __init__(self, ctx: Context, name: str, index: int) -> None:
        self.ctx = ctx
        self.name = name
        self.id = f"{name}#{index}"
        self.rng = random.Random(f"{ctx.seed}:{index}")
        self.threads: list[str] = []
        self.runs: list[str] = []
        self.finished = False

    @property
    def rec(self) -> Recorder:
        return self.ctx.recorder

    @property
    def history(self) -> History:
        return self.ctx.history

    # -------------------------------------------------------------- requests

    async def call(self, kind: str, method: str, path: str, **kw: Any) -> Exchange:
        return await self.rec.call(self.id, kind, method, path, **kw)

    async def thread(self) -> str:
        ex = await self.call("thread", "POST", "/threads",
                             json_body={"metadata": {"created_by": "runlane-check",
                                                     "scenario": self.id}})
        if not ex.ok or not isinstance(ex.answer, dict) or "thread_id" not in ex.answer:
            raise Abort(f"could not create a thread: {ex.outcome()}")
        self.threads.append(ex.answer["thread_id"])
        return ex.answer["thread_id"]

    def webhook(self) -> str | None:
        """The receiver's URL for a share of the runs (--webhooks), else None."""
        url = self.ctx.webhook_url
        if url is None or self.rng.random() >= self.ctx.webhook_share:
            return None
        return f"{url}/{self.id.replace('#', '-')}"

    async def create(self, thread_id: str, input: dict[str, Any], *, strategy: str | None = None,
                     graph: str | None = None) -> tuple[Exchange, str | None]:
        body: dict[str, Any] = {"assistant_id": graph or self.ctx.graph, "input": input}
        if strategy is not None:
            body["multitask_strategy"] = strategy
        webhook = self.webhook()
        if webhook is not None:
            body["webhook"] = webhook
        ex = await self.call("create", "POST", f"/threads/{thread_id}/runs", json_body=body,
                             thread_id=thread_id,
                             extra={"strategy": strategy or "enqueue", "input": input})
        run_id = ex.answer.get("run_id") if ex.ok and isinstance(ex.answer, dict) else None
        if run_id:
            self._register(ex, thread_id, run_id, input, strategy or "enqueue",
                           graph or self.ctx.graph, webhook=webhook)
        return ex, run_id

    def _register(self, ex: Exchange, thread_id: str, run_id: str, input: dict[str, Any],
                  strategy: str, graph: str, *, webhook: str | None = None,
                  nominal: float | None = None) -> None:
        self.history.attach(ex, run_id)
        if nominal is None:
            nominal = (_duration(input) if graph == self.ctx.graph
                       else input.get("ms", 0) / 1000)
        self.history.runs[run_id] = RunRecord(
            run_id=run_id, thread_id=thread_id, scenario=self.id, graph=graph, input=input,
            strategy=strategy, created_seq=ex.seq,
            t_created=ex.events[0]["t"] if ex.events else (ex.t_done or ex.t_sent),
            nominal=nominal, webhook=webhook,
        )
        self.runs.append(run_id)

    async def cancel(self, thread_id: str, run_id: str, *, wait: bool = False,
                     action: str = "interrupt") -> Exchange:
        """A cancel with the spellings real clients use: wait as 1/0 (SDK) or
        true/false (browsers) or absent (false); action absent for interrupt sometimes."""
        params: dict[str, str] = {}
        if wait:
            params["wait"] = self.rng.choice(["1", "true"])
        elif self.rng.random() < 0.6:
            params["wait"] = self.rng.choice(["0", "false"])
        if action != "interrupt" or self.rng.random() < 0.6:
            params["action"] = action
        return await self.call(
            "cancel", "POST", f"/threads/{thread_id}/runs/{run_id}/cancel", params=params,
            thread_id=thread_id, run_id=run_id, extra={"wait": wait, "action": action},
            timeout=self.ctx.stuck_after + 5 if wait else None,
        )

    def random_cancel(self) -> dict[str, Any]:
        return {"wait": self.rng.random() < 0.4, "action": self.rng.choice(ACTIONS)}

    async def cancels(self, thread_id: str, run_id: str, specs: list[dict[str, Any]],
                      stagger: float = 0.02) -> list[Exchange]:
        """Several cancels of one run at once, each after a tiny random delay."""

        async def one(spec: dict[str, Any]) -> Exchange:
            await asyncio.sleep(self.rng.uniform(0, stagger))
            return await self.cancel(thread_id, run_id, **spec)

        return list(await asyncio.gather(*(one(spec) for spec in specs)))

    async def get(self, thread_id: str, run_id: str, kind: str = "get",
                  extra: dict[str, Any] | None = None) -> Exchange:
        return await self.call(kind, "GET", f"/threads/{thread_id}/runs/{run_id}",
                               thread_id=thread_id, run_id=run_id, extra=extra)

    async def list_runs(self, thread_id: str) -> Exchange:
        return await self.call("list", "GET", f"/threads/{thread_id}/runs",
                               params={"limit": "100"}, thread_id=thread_id)

    async def join(self, thread_id: str, run_id: str) -> Exchange:
        return await self.call("join", "GET", f"/threads/{thread_id}/runs/{run_id}/join",
                               thread_id=thread_id, run_id=run_id,
                               timeout=self.ctx.stuck_after + 20)

    async def bulk_cancel(self, thread_id: str, run_ids: list[str], action: str) -> Exchange:
        return await self.call(
            "bulk_cancel", "POST", "/runs/cancel", params={"action": action},
            json_body={"thread_id": thread_id, "run_ids": run_ids}, thread_id=thread_id,
            run_ids=list(run_ids), extra={"action": action},
        )

    async def snapshot(self, thread_id: str) -> dict[str, Any] | None:
        """The thread's values and every checkpoint (oldest first), or None."""
        state = await self.call("state", "GET", f"/threads/{thread_id}/state",
                                thread_id=thread_id)
        hist = await self.call("history", "POST", f"/threads/{thread_id}/history",
                               json_body={"limit": 1000}, thread_id=thread_id)
        if not state.ok or not hist.ok or not isinstance(hist.answer, list):
            return None
        values = state.answer.get("values") if isinstance(state.answer, dict) else None
        return {
            "t": hist.t_done, "values": values or {},
            "checkpoints": list(reversed(hist.answer)),
            "seqs": [state.seq, hist.seq],
        }

    async def wait_running(self, thread_id: str, run_id: str, bound: float | None = None) -> str:
        """Poll until the run is no longer pending; its status (or 'pending' at the bound)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (bound or self.ctx.stuck_after)
        while True:
            ex = await self.get(thread_id, run_id, kind="poll")
            status = ex.answer.get("status") if isinstance(ex.answer, dict) else None
            if ex.status == 404:
                return "removed"
            if status and status != "pending":
                return status
            if loop.time() > deadline:
                return "pending"
            await asyncio.sleep(self.ctx.poll_interval)

    async def settle(self, run_ids: list[str] | None = None) -> None:
        """Wait (bounded) for the runs to be terminal or removed; record their finals.
        The bound is `stuck_after` plus what the runs queued on the same thread would
        take if nobody cancelled them."""
        run_ids = list(run_ids if run_ids is not None else self.runs)
        records = [self.history.runs[r] for r in run_ids if r in self.history.runs]
        now = self.rec.clock()
        queued: dict[str, float] = {}
        for rec in records:
            if rec.final_status in GONE:
                continue
            queued[rec.thread_id] = queued.get(rec.thread_id, 0.0) + rec.nominal
            rec.settle_from = now
        await asyncio.gather(*(
            self._settle_one(rec, self.ctx.stuck_after + queued.get(rec.thread_id, 0.0))
            for rec in records if rec.final_status not in GONE
        ))

    async def _settle_one(self, rec: RunRecord, bound: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while True:
            ex = await self.get(rec.thread_id, rec.run_id, kind="final")
            status = None
            if ex.status == 404:
                status = "removed"
            elif ex.ok and isinstance(ex.answer, dict):
                status = ex.answer.get("status")
            if status in GONE and not (status == "interrupted" and self._removal_due(rec, ex)):
                rec.final_status, rec.final, rec.t_final = status, ex.answer, ex.t_done
                return
            if loop.time() > deadline:
                rec.final_status = status if status else "active"
                if rec.final_status not in GONE:
                    rec.final_status = "active"
                rec.final, rec.t_final = ex.answer, ex.t_done
                rec.notes.append(f"not terminal {bound:.1f}s after the checker began waiting")
                return
            await asyncio.sleep(self.ctx.poll_interval)

    def _removal_due(self, rec: RunRecord, ex: Exchange) -> bool:
        """An `interrupted` run that a rollback may still remove: give the server a
        short grace (some remove the run after it stops) unless it says the effective
        action was interrupt."""
        if isinstance(ex.answer, dict) and ex.answer.get("cancel_action") == "interrupt":
            return False
        since = rec.t_final if rec.t_final is not None else ex.t_done or 0.0
        if rec.t_final is None:
            rec.t_final = since
        if (ex.t_done or 0.0) - since > ROLLBACK_GRACE:
            return False
        return any(
            ((e.kind == "cancel" and e.run_id == rec.run_id) or e.kind == "bulk_cancel")
            and e.extra.get("action") == "rollback"
            for e in self.history.for_run(rec.run_id)
        ) or any(
            e.kind == "create" and e.extra.get("strategy") == "rollback"
            and (e.t_done is None or e.t_done > self.history.exchanges[rec.created_seq].t_sent)
            for e in self.history.on_thread(rec.thread_id)
        )

    async def finish(self) -> None:
        """Settle every run, then snapshot every thread (for rollback and order checks)."""
        if self.finished:
            return
        self.finished = True
        await self.settle()
        for thread_id in self.threads:
            snap = await self.snapshot(thread_id)
            if snap is not None:
                self.history.snapshots[thread_id] = snap

    async def maybe_seed(self, thread_id: str) -> None:
        """Give the thread some history first (most of the time): a rollback must keep it."""
        if self.rng.random() < 0.25:
            return
        _, run_id = await self.create(thread_id, {"steps": self.rng.randint(1, 3), "delay": 0})
        if run_id is None:
            raise Abort("could not create the seed run")
        await self.settle([run_id])

    def claim_rollback(self, thread_id: str, run_id: str, pre: dict[str, Any] | None,
                       compare_values: bool) -> None:
        if pre is not None:
            self.history.rollback_claims.append(RollbackClaim(
                thread_id=thread_id, run_id=run_id, scenario=self.id, pre=pre,
                compare_values=compare_values))

    async def watch(self, thread_id: str, stop: asyncio.Event) -> None:
        """Sample the thread's runs until `stop`: no two may ever be running at once."""
        while not stop.is_set():
            await self.list_runs(thread_id)
            try:
                await asyncio.wait_for(stop.wait(), self.rng.uniform(0.02, 0.06))
            except TimeoutError:
                pass


# -------------------------------------------------------------------- scenarios


async def duplicate_cancels(s: Session) -> None:
    """N cancels of one active run, concurrent and then sequential, mixed wait values
    and actions, then one more after it is terminal: all 202/200, first action wins."""
    t = await s.thread()
    await s.maybe_seed(t)
    pre = await s.snapshot(t)
    _, r = await s.create(t, LONG)
    if r is None:
        raise Abort("create failed")
    await asyncio.sleep(s.rng.choice([0.0, s.rng.uniform(0, 0.3), s.rng.uniform(0.3, 1.0)]))
    same = s.rng.random() < 0.5
    first = s.random_cancel()
    specs = [dict(first) if same else s.random_cancel() for _ in range(s.rng.randint(2, 6))]
    await s.cancels(t, r, specs)
    if s.rng.random() < 0.5:
        await s.cancel(t, r, **s.random_cancel())
    await s.settle([r])
    await s.cancel(t, r, **s.random_cancel())
    s.claim_rollback(t, r, pre, compare_values=True)
    await s.finish()


async def cancel_vs_completion(s: Session) -> None:
    """Cancel at a random instant around the run's natural end: either it is accepted
    (and the run ends interrupted) or refused with 409 (and it ends success)."""
    t = await s.thread()
    await s.maybe_seed(t)
    pre = await s.snapshot(t)
    steps, delay = s.rng.randint(1, 6), round(s.rng.uniform(0.02, 0.1), 3)
    _, r = await s.create(t, {"steps": steps, "delay": delay})
    if r is None:
        raise Abort("create failed")
    loop = asyncio.get_running_loop()
    await s.wait_running(t, r)
    started = loop.time()
    offset = steps * delay + s.rng.uniform(-0.15, 0.1)
    await asyncio.sleep(max(0.0, offset - (loop.time() - started)))
    specs = [s.random_cancel() for _ in range(s.rng.choice([1, 1, 2, 3]))]
    await s.cancels(t, r, specs, stagger=0.01)
    await s.settle([r])
    await s.cancel(t, r, **s.random_cancel())  # after the end: 409 or 202, as the run ended
    s.claim_rollback(t, r, pre, compare_values=True)
    await s.finish()


async def cancel_at_start(s: Session) -> None:
    """Cancel right after create (racing the start), or a run queued behind another."""
    t = await s.thread()
    await s.maybe_seed(t)
    if s.rng.random() < 0.5:
        pre = await s.snapshot(t)
        _, r = await s.create(t, {"steps": s.rng.randint(2, 8), "delay": 0.05})
        if r is None:
            raise Abort("create failed")
        await s.cancels(t, r, [s.random_cancel() for _ in range(s.rng.choice([1, 1, 2]))],
                        stagger=0.0)
        await s.settle([r])
        s.claim_rollback(t, r, pre, compare_values=True)
    else:
        _, active = await s.create(t, LONG)
        if active is None:
            raise Abort("create failed")
        await s.wait_running(t, active)
        _, queued = await s.create(t, {"steps": 2, "delay": 0.01})
        if queued is None:
            raise Abort("create failed")
        await asyncio.sleep(s.rng.choice([0.0, s.rng.uniform(0, 0.2)]))
        # the active run's checkpoints: the queued one's rollback keeps them
        pre = await s.snapshot(t)
        await s.cancels(t, queued, [s.random_cancel() for _ in range(s.rng.choice([1, 2]))])
        s.claim_rollback(t, queued, pre, compare_values=False)
        await s.cancel(t, active, wait=s.rng.random() < 0.5, action="interrupt")
        await s.settle([active, queued])
        await s.cancel(t, queued, **s.random_cancel())
    await s.finish()


async def double_text(s: Session) -> None:
    """A second run on a busy thread, with each multitask strategy, sent at a random
    instant around the active run's natural end."""
    strategy = s.rng.choice(STRATEGIES)
    t = await s.thread()
    await s.maybe_seed(t)
    pre = await s.snapshot(t)
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(s.watch(t, stop))
    try:
        steps, delay = s.rng.randint(2, 8), round(s.rng.uniform(0.03, 0.1), 3)
        _, first = await s.create(t, {"steps": steps, "delay": delay})
        if first is None:
            raise Abort("create failed")
        loop = asyncio.get_running_loop()
        await s.wait_running(t, first)
        started = loop.time()
        offset = steps * delay * s.rng.uniform(0.0, 1.2)
        await asyncio.sleep(max(0.0, offset - (loop.time() - started)))
        await s.get(t, first)
        extra: list[str] = []
        if strategy == "enqueue" and s.rng.random() < 0.5:
            _, queued = await s.create(t, {"steps": 1, "delay": 0.02}, strategy="enqueue")
            if queued:
                extra.append(queued)
        _, second = await s.create(t, {"steps": s.rng.randint(1, 3), "delay": 0.02},
                                   strategy=strategy)
        await s.get(t, first)
        if strategy == "rollback":
            s.claim_rollback(t, first, pre, compare_values=False)
        if strategy == "reject" and second is None and s.rng.random() < 0.5:
            # once the active run is over, reject admits the run
            await s.settle([first])
            await s.create(t, {"steps": 1, "delay": 0}, strategy="reject")
        await s.settle()
    finally:
        stop.set()
        await watcher
    await s.finish()


async def join_waits(s: Session) -> None:
    """Joins (GET .../join) while the run is active, maybe with a cancel; each join
    answers once the run is terminal; a join of a finished run answers at once."""
    t = await s.thread()
    steps, delay = s.rng.randint(2, 8), round(s.rng.uniform(0.03, 0.08), 3)
    _, r = await s.create(t, {"steps": steps, "delay": delay})
    if r is None:
        raise Abort("create failed")

    async def one_join(after: float) -> None:
        await asyncio.sleep(after)
        await s.join(t, r)
        await s.get(t, r, extra={"after_join": True})

    jobs = [one_join(s.rng.uniform(0, steps * delay)) for _ in range(s.rng.randint(1, 3))]
    if s.rng.random() < 0.5:
        async def cancel_later() -> None:
            await asyncio.sleep(s.rng.uniform(0, steps * delay))
            await s.cancel(t, r, wait=s.rng.random() < 0.5, action="interrupt")

        jobs.append(cancel_later())
    await asyncio.gather(*jobs)
    await s.settle([r])
    await one_join(0)
    await s.finish()


def _last_id(events: list[dict[str, Any]], previous: str | None) -> str | None:
    ids = [e["id"] for e in events if e.get("id")]
    return ids[-1] if ids else previous


async def stream_rejoin(s: Session) -> None:
    """Stream a run, drop the connection after a few events, rejoin with Last-Event-ID,
    again and again until it ends: no event lost, none repeated, ids increasing."""
    t = await s.thread()
    steps, delay = s.rng.randint(4, 14), round(s.rng.uniform(0.03, 0.08), 3)
    input = {"steps": steps, "delay": delay}
    body = {"assistant_id": s.ctx.graph, "input": input, "stream_mode": ["custom"],
            "stream_resumable": True}
    await _stream_and_rejoin(s, t, body, steps=steps, nominal=steps * delay, ticks=True)


async def agent_stream(s: Session) -> None:
    """A real-shaped agent (examples/agents react_agent: a fake chat model streaming a
    story token by token) streamed with messages-tuple and updates, dropped, rejoined
    with Last-Event-ID (and resumed after a fault), maybe cancelled mid-answer: what
    the client got must be the run's event log, none lost, none repeated."""
    graph = s.ctx.agent_graph
    assert graph is not None
    t = await s.thread()
    words, delay = s.rng.randint(10, 60), 0.02
    body = {"assistant_id": graph,
            "input": {"messages": [{"role": "human", "content": "tell me a long story"}]},
            "context": {"reply_tokens": words, "token_delay": delay},
            "stream_mode": ["messages-tuple", "updates"], "stream_resumable": True}
    await _stream_and_rejoin(s, t, body, steps=words, nominal=words * delay + 0.5,
                             ticks=False)


def _resumable(s: Session, ex: Exchange) -> bool:
    """Rejoin after this segment: the checker dropped it, or (chaos) a fault cut it or a
    worker could not serve it."""
    if ex.dropped:
        return True
    if not s.history.chaos or ex.timed_out:
        return False
    return ex.error is not None or (ex.status is not None and ex.status >= 500)


async def _stream_and_rejoin(s: Session, t: str, body: dict[str, Any], *,
                             steps: int, nominal: float, ticks: bool) -> None:
    graph = body["assistant_id"]
    input = body["input"]
    webhook = s.webhook()
    if webhook is not None:
        body = {**body, "webhook": webhook}
    bound = s.ctx.stuck_after + nominal + 10
    first = await s.rec.stream(s.id, "stream", "POST", f"/threads/{t}/runs/stream",
                               json_body=body, thread_id=t,
                               max_events=s.rng.randint(1, 4), timeout=bound,
                               extra={"strategy": "enqueue", "input": input})
    run_id = None
    for event in first.events or ():
        if event["event"] == "metadata" and isinstance(event["data"], dict):
            run_id = event["data"].get("run_id")
            break
    if run_id is None and first.extra.get("content_location"):
        run_id = first.extra["content_location"].rstrip("/").split("/")[-1]
    if run_id is None:
        raise Abort(f"streamed run has no id: {first.outcome()}")
    s._register(first, t, run_id, input, "enqueue", graph, webhook=webhook, nominal=nominal)
    segments = [first.seq]
    last = _last_id(first.events or [], None)
    cancel_task = None
    if s.rng.random() < 0.3:
        async def cancel_later() -> None:
            await asyncio.sleep(s.rng.uniform(0, nominal))
            await s.cancel(t, run_id, action="interrupt")

        cancel_task = asyncio.ensure_future(cancel_later())
    ex = first
    # Under chaos a fault may cut the stream many times: more rejoins, each one
    # after a pause (the worker it reached may be down).
    attempts = 40 if s.history.chaos else 12
    for attempt in range(attempts):
        if not _resumable(s, ex):
            break  # the stream ended (or failed for good): nothing more to rejoin
        if ex.dropped:
            await asyncio.sleep(s.rng.choice([0.0, s.rng.uniform(0, 0.3)]))
        else:
            await asyncio.sleep(s.rng.uniform(0.3, 1.0))
        drop_after = (s.rng.randint(1, 5) if attempt < 10 and s.rng.random() < 0.6
                      else None)
        headers = {"Last-Event-ID": last} if last is not None else None
        ex = await s.rec.stream(s.id, "stream", "GET", f"/threads/{t}/runs/{run_id}/stream",
                                headers=headers, thread_id=t, run_id=run_id,
                                max_events=drop_after, timeout=bound,
                                extra={"last_event_id": last})
        segments.append(ex.seq)
        last = _last_id(ex.events or [], last)
    if cancel_task is not None:
        await cancel_task
    claim = StreamClaim(thread_id=t, run_id=run_id, scenario=s.id, steps=steps,
                        segments=segments, ticks=ticks)
    s.history.stream_claims.append(claim)
    await s.finish()
    claim.replay = await _replay(s, t, run_id, bound)


async def _replay(s: Session, t: str, run_id: str, bound: float) -> int:
    """The run's whole event log, once it is over: a join without Last-Event-ID.
    Retried a few times under chaos (a fault may be under way)."""
    for _ in range(10 if s.history.chaos else 1):
        ex = await s.rec.stream(s.id, "replay", "GET", f"/threads/{t}/runs/{run_id}/stream",
                                thread_id=t, run_id=run_id, timeout=bound)
        if ex.status == 200 and ex.error is None:
            break
        await asyncio.sleep(1.0)
    return ex.seq


async def bulk_cancel(s: Session) -> None:
    """POST /runs/cancel of a thread's active run and the runs queued behind it."""
    t = await s.thread()
    await s.maybe_seed(t)
    pre = await s.snapshot(t)
    _, active = await s.create(t, LONG)
    if active is None:
        raise Abort("create failed")
    await asyncio.sleep(s.rng.uniform(0, 0.5))
    queued = []
    for _ in range(s.rng.randint(0, 3)):
        _, q = await s.create(t, {"steps": 2, "delay": 0.01})
        if q:
            queued.append(q)
    action = s.rng.choice(ACTIONS)
    await s.bulk_cancel(t, [active, *queued], action)
    for run_id in (active, *queued):
        await s.get(t, run_id)
    await s.settle()
    await s.cancel(t, active, **s.random_cancel())
    s.claim_rollback(t, active, pre, compare_values=True)
    await s.finish()


async def timed_order(s: Session) -> None:
    """Runs of the `timed` graph (one node sleeping `ms`, recording its span) created
    on one thread at once, with enqueue/interrupt: their spans must never overlap."""
    graph = s.ctx.timed_graph
    assert graph is not None
    t = await s.thread()
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(s.watch(t, stop))
    try:
        async def one(i: int) -> None:
            await asyncio.sleep(s.rng.uniform(0, 0.3))
            strategy = s.rng.choice(["enqueue", "enqueue", "interrupt"])
            await s.create(t, {"ms": s.rng.randint(30, 250)}, strategy=strategy, graph=graph)

        await asyncio.gather(*(one(i) for i in range(s.rng.randint(2, 5))))
        await s.settle()
    finally:
        stop.set()
        await watcher
    await s.finish()
    snap = s.history.snapshots.get(t)
    if snap is not None:
        spans = (snap["values"] or {}).get("spans") or []
        s.history.span_claims.append(SpanClaim(thread_id=t, scenario=s.id, spans=list(spans)))


ScenarioFn = Callable[[Session], Awaitable[None]]

# name -> (function, weight)
SCENARIOS: dict[str, tuple[ScenarioFn, int]] = {
    "duplicate_cancels": (duplicate_cancels, 3),
    "cancel_vs_completion": (cancel_vs_completion, 4),
    "cancel_at_start": (cancel_at_start, 3),
    "double_text": (double_text, 4),
    "join_waits": (join_waits, 1),
    "stream_rejoin": (stream_rejoin, 2),
    "agent_stream": (agent_stream, 2),
    "bulk_cancel": (bulk_cancel, 1),
    "timed_order": (timed_order, 1),
}


def pick(rng: random.Random, names: list[str]) -> str:
    weights = [SCENARIOS[n][1] for n in names]
    return rng.choices(names, weights=weights)[0]


__all__ = ["SCENARIOS", "Abort", "Context", "Session", "pick"]
