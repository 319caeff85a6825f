"""Race tests: the run contract under real concurrency, thousands of times.

Each family below runs hundreds of independent trials, many at once (every trial on a
thread of its own), with randomized timings, over real HTTP (httpx and the official
langgraph_sdk client), against each backend of the e2e suite: a `runlane serve`
process of this module's own on SQLite, and the session's three workers on PostgreSQL
+ Redis with every request sent to the next worker (fewer trials there). Every answer
is checked against the contract's table and invariants
(docs/run-contract.md):

1. accepted means done: 202/200 -> the run ends `interrupted` (or is removed by its
   rollback, leaving a tombstone), never `success`;
2. refused means finished: 409 names the terminal status the run already had, and
   keeps;
3. idempotent: the same cancel repeated answers the same;
4. nothing stuck: every trial must finish within TRIAL_TIMEOUT (waiters included),
   the thread is idle after and still runs the next run;
5. no lost history: a rollback keeps every checkpoint from before the run and leaves
   none of the run's;
6. no 5xx, ever.

The four families:

1. test_concurrent_cancels_of_one_run      N (10-20) cancels of one active run at once
2. test_cancel_races_completion            one cancel at a random instant around the
                                           run's own completion
3. test_cancel_races_start                 a cancel racing a pending run's start
4. test_double_texting_races_completion    interrupt/rollback double-texting racing the
                                           active run's completion

Where a family races two outcomes, the racing request's delay and the run's duration
are drawn at random around values that adapt as the trials go (see `Tuner`), so that
both sides keep happening whatever the machine's load. Each test prints a summary line
(`[race] ...`: trials, time, the split of the race, the tuned values, every answer)
and asserts that each side of its race happened a minimum number of times.

RUNLANE_RACE_SCALE (default 1) multiplies every trial count (e.g. 10 for a soak);
RUNLANE_RACE_CLUSTER_SCALE (default 0.3) scales them again on PostgreSQL;
RUNLANE_RACE_IN_FLIGHT (default 20) is how many trials run at once;
RUNLANE_RACE_MAX_CONCURRENCY (default 5000) is the SQLite server's --max-concurrency
(a small one makes runs wait for a slot; the minimum splits assume the default).
RUNLANE_TEST_BACKENDS=sqlite (conftest) leaves PostgreSQL out.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import os
import random
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import ServerProcess

pytestmark = pytest.mark.race

SCALE = float(os.environ.get("RUNLANE_RACE_SCALE", "1"))
IN_FLIGHT = int(os.environ.get("RUNLANE_RACE_IN_FLIGHT", "20"))
CLUSTER_SCALE = float(os.environ.get("RUNLANE_RACE_CLUSTER_SCALE", "0.3"))
TRIAL_TIMEOUT = 45.0  # seconds: a trial still going by then is stuck (invariant 4)

TERMINAL = {"success", "error", "timeout", "interrupted"}
FINISHED_WITHOUT_CANCEL = {"success", "error", "timeout"}
ACCEPTED_OUTCOMES = {"recorded", "already_recorded", "already_interrupted", "rolled_back"}

Row = dict[str, Any]


def scaled(n: int, server: ServerProcess) -> int:
    return max(1, round(n * SCALE * backend_scale(server)))


def minimum(n: int, server: ServerProcess) -> int:
    """How many times each side of a race must at least happen (scaled down for a
    short run, never below 3)."""
    return max(3, round(n * min(SCALE * backend_scale(server), 1.0)))


def ts(value: str) -> float:
    return datetime.datetime.fromisoformat(value).timestamp()


# ---------------------------------------------------------------------- harness


@pytest.fixture(scope="module")
def race_server(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory):
    """Where the races run, for each backend of the e2e suite. On SQLite, a process of
    this module's own, allowed to execute thousands of runs at once. On PostgreSQL,
    the session's three workers (PostgreSQL allows only so many connections; another
    cluster would exhaust them), every request sent to the next worker, so cancels,
    admissions and waits cross workers."""
    if hasattr(server, "workers"):
        yield server
        return
    max_concurrency = os.environ.get("RUNLANE_RACE_MAX_CONCURRENCY", "5000")
    proc = ServerProcess(tmp_path_factory.mktemp("race"), "--max-concurrency", max_concurrency)
    proc.start()
    yield proc
    proc.stop()


def backend_scale(server: ServerProcess) -> float:
    """Trials on a cluster cost more (three workers on two cores): fewer of them."""
    return CLUSTER_SCALE if hasattr(server, "workers") else 1.0


def check_log(server: ServerProcess, started: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    """What the test made the server log: no unexpected error, abandoned task or failed
    finalization on SQLite. On the cluster only reported: its workers share the
    machine's PostgreSQL with every other test process (whose running out of
    connections they log), and the verdicts there are the answers and final states."""
    workers = getattr(server, "workers", [server])
    bad = [
        line
        for worker, offset in zip(workers, started.log_offsets, strict=True)
        for line in worker.log()[offset:].splitlines()
        if " ERROR " in line or " WARNING " in line or " CRITICAL " in line
        or line.startswith("Traceback")
    ]
    if len(workers) == 1:
        assert not bad, "server log:\n" + "\n".join(bad[:20])
    elif bad:
        kinds = collections.Counter(" ".join(line.split()[2:5]) for line in bad)
        with capsys.disabled():
            print(f"[race] worker log lines to look at: {dict(kinds.most_common(8))}")


class Tuner:
    """One knob of a race (a delay before the racing request, or a run's duration),
    adapting as the trials report which side won, so that both sides keep happening
    whatever the machine's load: with `early_grows` (a delay) an early outcome (the
    cancel won) lengthens it and a late one shortens it; without (a run's duration)
    the reverse. A delay tunes the race when the cancel reaches the server sooner than
    the run ends, a duration when the server's latency alone is longer than the run.
    Together they settle where the race is close to even."""

    def __init__(self, value: float, lo: float, hi: float, *, early_grows: bool) -> None:
        self.value, self.lo, self.hi, self.early_grows = value, lo, hi, early_grows
        self.observed = 0

    def upto(self) -> float:
        return random.uniform(0, self.value)

    def around(self) -> float:
        return self.value * random.uniform(0.5, 1.5)

    def observe(self, early: bool) -> None:
        # Big steps first, to find the race window fast on any machine; then small
        # ones, to stay in it.
        step = 1.03 + 0.22 * 0.97 ** self.observed
        self.observed += 1
        factor = step if early == self.early_grows else 1 / step
        self.value = min(self.hi, max(self.lo, self.value * factor))

    def __repr__(self) -> str:
        return f"{self.value:.4g}"


def delay_tuner(start: float = 0.01) -> Tuner:
    return Tuner(start, 0.0002, 2.0, early_grows=True)


def duration_tuner(start_ms: float = 5.0) -> Tuner:
    return Tuner(start_ms, 1.0, 2000.0, early_grows=False)


class RetryUnavailable(httpx.AsyncBaseTransport):
    """For a cluster: a request answered 503 ("the database is unreachable right now;
    retry shortly": PostgreSQL, shared by every test process on the machine, out of
    connections) is sent again after a pause, as a client would. Counted in the
    summary; no race changes its verdict on a request that did nothing."""

    def __init__(self, inner: httpx.AsyncBaseTransport, api: Api) -> None:
        self.inner, self.api = inner, api

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(60):
            response = await self.inner.handle_async_request(request)
            if response.status_code != 503:
                return response
            await response.aread()
            await response.aclose()
            # A 503 can come after the change was made (say, the cancel was recorded
            # and telling the other workers failed): the retry then finds it done.
            self.api.unavailable += 1
            self.api.retried.add(request.url.path)
            await asyncio.sleep(0.25)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class Api:
    """Both clients, plus a tally of every answer (no 5xx is checked on each). On a
    cluster, each request goes to the next worker."""

    def __init__(self, server: ServerProcess) -> None:
        # No keep-alive: on a loaded machine a client can be slow enough to reuse a
        # connection the server (5 s keep-alive, counted from its own send) is closing,
        # and a request sent then fails with ReadError. A new connection per request
        # costs little on localhost.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
        urls = getattr(server, "urls", None)
        self.unavailable = 0  # 503s retried (cluster only)
        self.retried: set[str] = set()  # the paths of the requests retried

        def transport() -> httpx.AsyncBaseTransport:
            if not urls:
                return httpx.AsyncHTTPTransport(limits=limits)
            from cluster import RoundRobinTransport

            spread = RoundRobinTransport(urls)
            spread._inner = httpx.AsyncHTTPTransport(limits=limits)  # type: ignore[attr-defined]
            return RetryUnavailable(spread, self)

        self.http = httpx.AsyncClient(base_url=server.url, transport=transport(),
                                      timeout=httpx.Timeout(60, pool=None))
        self.sdk = get_client(url=server.url, timeout=60)
        self.sdk.http.client._transport = transport()
        self.codes: collections.Counter[int] = collections.Counter()
        self.cancel_answers: collections.Counter[str] = collections.Counter()
        self._background: set[asyncio.Task[Any]] = set()

    def background(self, request: Awaitable[Any]) -> asyncio.Task[Any]:
        """A request a trial awaits later (a waiter, a stream). If the trial fails
        before, it is cancelled at the end, and its error is the trial's, not news."""
        task = asyncio.ensure_future(request)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.http.aclose()
        await self.sdk.aclose()

    async def call(
        self, method: str, path: str, *, expect: set[int] | None = None, **kwargs: Any
    ) -> httpx.Response:
        response = await self.http.request(method, path, **kwargs)
        self.codes[response.status_code] += 1
        assert response.status_code < 500, (  # invariant 6
            f"{method} {path} -> {response.status_code}: {response.text}"
        )
        if expect is not None:
            assert response.status_code in expect, (
                f"{method} {path} -> {response.status_code}: {response.text}"
            )
        return response

    async def create_run(
        self, thread_id: str, ms: float, *, strategy: str | None = None
    ) -> Row:
        body: Row = {"assistant_id": "timed", "input": {"ms": ms}, "if_not_exists": "create"}
        if strategy is not None:
            body["multitask_strategy"] = strategy
        return (await self.call("POST", f"/threads/{thread_id}/runs", json=body,
                                expect={200})).json()

    async def run_and_wait(self, thread_id: str, ms: float = 0.0) -> Row:
        """A run created with /runs/wait (default strategy: enqueue); its final values."""
        body = {"assistant_id": "timed", "input": {"ms": ms}, "if_not_exists": "create"}
        return (await self.call("POST", f"/threads/{thread_id}/runs/wait", json=body,
                                expect={200})).json()

    async def create_streamed(self, thread_id: str, ms: float) -> tuple[str, asyncio.Future]:
        """POST /threads/{id}/runs/stream: the run's id (from the response's headers, as
        soon as they come) and a future of the names of all the events the stream
        carries until it ends."""
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        body = {"assistant_id": "timed", "input": {"ms": ms}, "if_not_exists": "create",
                "stream_mode": ["values"]}

        async def read() -> list[str]:
            names: list[str] = []
            async with self.http.stream("POST", f"/threads/{thread_id}/runs/stream",
                                        json=body) as r:
                self.codes[r.status_code] += 1
                assert r.status_code == 200, r.status_code
                ready.set_result(r.headers["Content-Location"].rsplit("/", 1)[1])
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        names.append(line[len("event: "):])
            return names

        events = self.background(read())
        await asyncio.wait({ready, events}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            events.result()  # raises what went wrong
        return ready.result(), events

    async def join(self, thread_id: str, run_id: str) -> Row:
        """GET .../join: blocks until the run is over; the thread's values then."""
        return (await self.call("GET", f"/threads/{thread_id}/runs/{run_id}/join",
                                expect={200})).json()

    async def join_stream(self, thread_id: str, run_id: str) -> list[str]:
        """GET .../stream: the run's events until the stream ends; their names.
        (404 is fine only for a run already removed by its rollback.)"""
        names: list[str] = []
        async with self.http.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as r:
            self.codes[r.status_code] += 1
            assert r.status_code in (200, 404), r.status_code
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    names.append(line[len("event: "):])
        return names

    async def cancel(
        self, thread_id: str, run_id: str, *, action: str = "interrupt", wait: bool = False
    ) -> tuple[int, Row]:
        """One cancel, spelled in any of the ways the contract accepts."""
        params: dict[str, str] = {}
        if action != "interrupt" or random.random() < 0.5:
            params["action"] = action
        if wait or random.random() < 0.5:
            params["wait"] = random.choice(["1", "true"] if wait else ["0", "false"])
        response = await self.call(
            "POST", f"/threads/{thread_id}/runs/{run_id}/cancel", params=params
        )
        body = response.json()
        outcome = body.get("cancel_outcome", body.get("status"))
        self.cancel_answers[f"{response.status_code} {outcome}"] += 1
        return response.status_code, body

    def cancel_retried(self, thread_id: str, run_id: str) -> bool:
        """Was a cancel of this run sent again after a 503 (so perhaps recorded by an
        attempt whose answer was lost)?"""
        return f"/threads/{thread_id}/runs/{run_id}/cancel" in self.retried

    async def final(self, thread_id: str, run_id: str) -> Row:
        """The run's final row. For a run its rollback removed, the tombstone's copy,
        marked `removed`: a cancel of the removed run must still answer 202/200
        `rolled_back` (not 404), with the run's final state."""
        path = f"/threads/{thread_id}/runs/{run_id}"
        response = await self.call("GET", path, expect={200, 404})
        if response.status_code == 200 and response.json()["status"] not in TERMINAL:
            await self.join(thread_id, run_id)  # still stopping: wait for its end
            response = await self.call("GET", path, expect={200, 404})
        if response.status_code == 200:
            row = response.json()
            assert row["status"] in TERMINAL, row
            return row
        wait = random.random() < 0.5
        code, body = await self.cancel(
            thread_id, run_id, action=random.choice(["interrupt", "rollback"]), wait=wait
        )
        assert (code, body.get("cancel_outcome")) == (200 if wait else 202, "rolled_back"), (
            f"a run removed without its rollback's tombstone: {code} {body}"
        )
        assert body["cancel_action"] == "rollback" and body["status"] == "interrupted", body
        return {**body, "removed": True}

    async def thread(self, thread_id: str) -> Row:
        return (await self.call("GET", f"/threads/{thread_id}", expect={200})).json()

    async def spans(self, thread_id: str) -> list[Row]:
        """The `timed` graph's record of the runs the thread's current state includes."""
        state = (await self.call("GET", f"/threads/{thread_id}/state", expect={200})).json()
        return (state.get("values") or {}).get("spans") or []

    async def history(self, thread_id: str) -> dict[str, str | None]:
        """The thread's checkpoints: id -> the run that wrote it."""
        history = (await self.call("GET", f"/threads/{thread_id}/history",
                                   params={"limit": 1000}, expect={200})).json()
        return {state["checkpoint_id"]: (state["metadata"] or {}).get("run_id")
                for state in history}


def check_answer(code: int, body: Row, *, wait: bool) -> str:
    """The contract's table for a cancel of an existing run: 'accepted' or 'refused';
    any other answer fails."""
    if code == 409:
        # Refused: the body says which terminal status the run already had.
        assert body.get("status") in FINISHED_WITHOUT_CANCEL, body
        assert body["run"]["status"] == body["status"], body
        return "refused"
    assert code == (200 if wait else 202), (code, body)
    assert body["cancel_outcome"] in ACCEPTED_OUTCOMES, body
    assert body["cancel_action"] in ("interrupt", "rollback"), body
    if wait:
        # wait=true answers once the run is terminal, with its final state (for a
        # rolled-back run, its tombstone's: `interrupted` too).
        assert body["status"] == "interrupted", body
    return "accepted"


def check_final(kind: str, answer: Row, final: Row, action: str) -> None:
    """Invariants 1 and 2: what the run's final state must be after an answer."""
    if kind == "accepted":
        assert final["status"] == "interrupted", (answer, final)
        assert final["cancel_action"] == action, final
        assert final["stop_reason"] == "cancelled", final
        assert bool(final.get("removed")) == (action == "rollback"), (
            f"a {action} accepted, but the run was {'' if final.get('removed') else 'not '}"
            f"removed: {final}")
    else:
        assert not final.get("removed") and final["status"] == answer["status"], (answer, final)


async def run_trials(n: int, trial: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """n trials, IN_FLIGHT at a time. All of them run to the end; the failures are
    reported together (a trial exceeding TRIAL_TIMEOUT counts as stuck)."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> Any:
        async with gate:
            try:
                return await asyncio.wait_for(trial(i), TRIAL_TIMEOUT)
            except TimeoutError as exc:
                raise AssertionError(f"trial {i} still going after {TRIAL_TIMEOUT}s") from exc

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        kinds = collections.Counter(f"{type(f).__name__}: {str(f)[:300]}" for f in failures)
        first = "".join(traceback.format_exception(failures[0]))
        raise AssertionError(
            f"{len(failures)} of {n} trials failed:\n"
            + "\n".join(f"  {count} x {kind}" for kind, count in kinds.most_common(10))
            + f"\nfirst failure:\n{first}"
        )
    return results


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time used so far by this process, or by another one (Linux)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Clock:
    """Wall time and the CPU time of the tests and the server(s), for the summary."""

    def __init__(self, server: ServerProcess) -> None:
        workers = getattr(server, "workers", [server])
        self.backend = f"postgresql, {len(workers)} workers" if len(workers) > 1 else "sqlite"
        self.pids = [w.proc.pid for w in workers if w.proc]
        self.wall, self.cpu, self.server_cpu = time.monotonic(), cpu_seconds(), self.servers()
        self.log_offsets = [len(w.log()) for w in workers]

    def servers(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def __str__(self) -> str:
        return (f"{time.monotonic() - self.wall:.1f}s (cpu: tests {cpu_seconds() - self.cpu:.1f}s, "
                f"server {self.servers() - self.server_cpu:.1f}s)")


def report(capsys: pytest.CaptureFixture[str], name: str, trials: int, started: Clock,
           api: Api, split: collections.Counter[str], **tuners: Tuner) -> None:
    retried = f"; 503s retried {api.unavailable}" if api.unavailable else ""
    with capsys.disabled():
        print(
            f"\n[race] {name} ({started.backend}): {trials} trials in {started}; "
            f"split {dict(sorted(split.items()))}; tuned to {tuners}; "
            f"cancel answers {dict(sorted(api.cancel_answers.items()))}; "
            f"http {dict(sorted(api.codes.items()))}{retried}"
        )


# ------------------------------------------------------------------- family 1


async def test_concurrent_cancels_of_one_run(race_server: ServerProcess, capsys) -> None:
    """N (10-20) concurrent cancels of one active run, mixed actions and wait values,
    some through the official SDK, and now and then a bulk cancel or a run created
    with multitask_strategy interrupt/rollback (which cancels the same run) among
    them: every answer 202 (200 for wait), at most one records the cancel and its
    action is the effective one in all answers, the run stops once and ends
    `interrupted` (or is rolled back), and its thread is idle again."""
    api = Api(race_server)
    split: collections.Counter[str] = collections.Counter()
    # (A cluster answers slower: its cancels need a longer run ahead to land on pending.)
    ahead_duration = duration_tuner(800.0 if hasattr(race_server, "workers") else 200.0)
    n_trials = scaled(200, race_server)
    started = Clock(race_server)

    async def trial(i: int) -> None:
        thread_id = str(uuid.uuid4())
        # Every other trial queued behind a run about to end, so that the cancels race
        # the run's start: they land on it pending or running.
        ahead = await api.create_run(thread_id, ms=ahead_duration.around()) if i % 2 else None
        run = await api.create_run(thread_id, ms=60_000)  # would run for a minute
        run_id = run["run_id"]
        # Clients waiting for the run's end while it is cancelled: they must see it.
        waiters = []
        if random.random() < 0.3:
            waiters.append(api.background(api.join(thread_id, run_id)))
        if random.random() < 0.3:
            waiters.append(api.background(api.join_stream(thread_id, run_id)))
        await asyncio.sleep(random.uniform(0, 0.02))  # land on pending or running
        any_action = ("interrupt", "interrupt", "rollback")

        # Each job answers (kind, body, wait).
        async def by_http(action: str, wait: bool) -> tuple[str, Any, bool]:
            code, body = await api.cancel(thread_id, run_id, action=action, wait=wait)
            assert check_answer(code, body, wait=wait) == "accepted", (code, body)
            return "cancel", body, wait

        async def by_sdk(action: str, wait: bool) -> tuple[str, Any, bool]:
            # The SDK sends wait=1/0 and raises on anything but 2xx.
            body = await api.sdk.runs.cancel(thread_id, run_id, wait=wait, action=action)
            assert body["cancel_outcome"] in ACCEPTED_OUTCOMES, body
            assert not wait or body["status"] == "interrupted", body
            return "cancel", body, wait

        async def by_bulk(action: str) -> tuple[str, Any, bool]:
            await api.call("POST", "/runs/cancel", params={"action": action},
                           json={"thread_id": thread_id, "run_ids": [run_id]}, expect={204})
            return "bulk", None, False

        async def by_double_text(strategy: str) -> tuple[str, Any, bool]:
            later = await api.create_run(thread_id, ms=0, strategy=strategy)
            return "double-text", later, False

        jobs = [by_http(random.choice(any_action), random.random() < 0.4)
                for _ in range(random.randint(10, 20))]
        jobs += [by_sdk(random.choice(any_action), random.random() < 0.5)
                 for _ in range(random.randint(0, 2))]
        if random.random() < 0.15:
            jobs.append(by_bulk(random.choice(any_action)))
        if random.random() < 0.2:
            jobs.append(by_double_text(random.choice(["interrupt", "rollback"])))
        random.shuffle(jobs)
        results = await asyncio.gather(*jobs)

        bodies = [body for kind, body, _ in results if kind == "cancel"]
        others = {kind: body for kind, body, _ in results if kind != "cancel"}
        recorded = [(b, wait) for kind, b, wait in results
                    if kind == "cancel" and b["cancel_outcome"] == "recorded"]
        assert len(recorded) <= 1, f"{len(recorded)} answers say they recorded the cancel"
        if not others and not api.cancel_retried(thread_id, run_id):
            # (else a bulk cancel, the new run's admission, or an attempt whose answer
            # was a 503 may have)
            assert len(recorded) == 1, [b["cancel_outcome"] for b in bodies]
        # The first cancel recorded wins: every answer carries its action.
        effective = {b["cancel_action"] for b in bodies}
        assert len(effective) == 1, f"answers disagree on the effective action: {effective}"
        action = effective.pop()
        final = await api.final(thread_id, run_id)
        check_final("accepted", bodies[0], final, action)
        reason = final["cancel_reason"]
        assert reason in ("user", f"multitask_{action}"), final
        split[f"{action} won"] += 1
        if recorded and not recorded[0][1]:
            # What the store held when the winning cancel landed: the run as answered
            # (a 200 shows its end instead).
            landed = "running" if recorded[0][0]["status"] == "running" else "pending"
            split[f"won on {landed}"] += 1
            if ahead is not None:
                ahead_duration.observe(landed == "pending")
        later = others.get("double-text")
        if ahead is not None:
            # It ends on its own, unless the double-texted run's admission cancelled it.
            first = await api.final(thread_id, ahead["run_id"])
            if first["status"] != "success":
                assert later is not None and first["cancel_reason"].startswith("multitask_"), first
        if later is not None:
            split[f"double-texted, {'its admission' if reason != 'user' else 'a user'} won"] += 1
            values = await api.sdk.runs.join(thread_id, later["run_id"])
            ran = [s["run_id"] for s in values["spans"]]
            assert run_id not in ran and ran[-1] == later["run_id"], values
            assert (await api.final(thread_id, later["run_id"]))["status"] == "success"
        for waiter in waiters:
            result = await waiter
            if isinstance(result, dict):  # join: the thread's values, without the run's
                assert run_id not in {s["run_id"] for s in result.get("spans", [])}, result
        # Stopped once, before its node returned; the thread is free again.
        thread = await api.thread(thread_id)
        assert thread["status"] == "idle", thread
        assert run_id not in {s["run_id"] for s in (thread["values"] or {}).get("spans", [])}

    try:
        await run_trials(n_trials, trial)
    finally:
        report(capsys, "concurrent cancels", n_trials, started, api, split,
               ahead_duration_ms=ahead_duration)
        await api.close()
    for side in ("interrupt won", "rollback won", "won on pending", "won on running"):
        assert split[side] >= minimum(10, race_server), (side, split)
    check_log(race_server, started, capsys)


# ------------------------------------------------------------------- family 2


async def test_cancel_races_completion(race_server: ServerProcess, capsys) -> None:
    """A run that finishes a few ms after it starts, and one cancel at a random instant
    around its completion: either accepted (202/200) and the run ends `interrupted`
    (or rolled back), or refused with a 409 naming `success` and the run stays
    `success`. Nothing else. A repeated cancel answers the same (idempotent)."""
    api = Api(race_server)
    split: collections.Counter[str] = collections.Counter()
    delay, duration = delay_tuner(), duration_tuner()
    n_trials = scaled(1000, race_server)
    started = Clock(race_server)

    async def trial(i: int) -> None:
        thread_id = str(uuid.uuid4())
        ms = duration.around()
        action = "rollback" if random.random() < 0.25 else "interrupt"
        wait = random.random() < 0.5
        run = await api.create_run(thread_id, ms=ms)
        run_id = run["run_id"]
        joined = api.background(api.join(thread_id, run_id)) if i % 3 == 0 else None
        await asyncio.sleep(delay.upto())
        code, body = await api.cancel(thread_id, run_id, action=action, wait=wait)
        kind = check_answer(code, body, wait=wait)
        delay.observe(kind == "accepted")
        duration.observe(kind == "accepted")
        if kind == "accepted":
            if not api.cancel_retried(thread_id, run_id):
                assert body["cancel_outcome"] == "recorded", body  # the only cancel of it
            assert body["cancel_action"] == action, body
        else:
            assert body["status"] == "success", body  # the graph cannot fail or time out
        # The same cancel again (the other wait): the same verdict (invariant 3).
        code2, body2 = await api.cancel(thread_id, run_id, action=random.choice(
            ["interrupt", "rollback"]), wait=not wait)
        assert check_answer(code2, body2, wait=not wait) == kind, (body, code2, body2)
        if kind == "accepted":
            assert body2["cancel_action"] == action, body2
            assert body2["cancel_outcome"] != "recorded", body2
        else:
            assert body2["status"] == body["status"], body2
        final = await api.final(thread_id, run_id)
        check_final(kind, body, final, action)
        if joined is not None:  # a client that was waiting for the end got it
            seen = {s["run_id"] for s in (await joined).get("spans", [])}
            if kind == "refused" or action == "rollback":
                assert seen == ({run_id} if kind == "refused" else set()), (body, seen)
        if kind == "refused":
            split["409 success"] += 1
            return
        split[f"{200 if wait else 202} {action}"] += 1
        spans = await api.spans(thread_id)
        if action == "rollback":
            assert not spans, f"rolled back, but the thread kept the run's writes: {spans}"
        elif spans:
            # The graph had returned and its checkpoint was written: the cancel still won.
            split["interrupt after the graph returned"] += 1
        thread = await api.thread(thread_id)
        assert thread["status"] == "idle", thread
        if action == "rollback":
            assert not (thread["values"] or {}).get("spans"), thread

    try:
        await run_trials(n_trials, trial)
    finally:
        report(capsys, "cancel vs completion", n_trials, started, api, split,
               delay_s=delay, duration_ms=duration)
        await api.close()
    accepted = n_trials - split["409 success"]
    assert min(split["409 success"], accepted) >= minimum(100, race_server), split
    check_log(race_server, started, capsys)


# ------------------------------------------------------------------- family 3


async def test_cancel_races_start(race_server: ServerProcess, capsys) -> None:
    """A cancel racing a pending run's start: on an idle thread right after creating
    the run, or on a run queued behind one that is about to finish. Accepted cancels
    end `interrupted` (or rolled back), never `success`; no run is stranded pending; a
    later run on the thread still starts and succeeds."""
    api = Api(race_server)
    split: collections.Counter[str] = collections.Counter()
    idle_delay, queued_delay, ahead_duration = delay_tuner(0.002), delay_tuner(), duration_tuner()
    n_trials = scaled(800, race_server)
    started = Clock(race_server)

    async def trial(i: int) -> None:
        thread_id = str(uuid.uuid4())
        action = "rollback" if random.random() < 0.3 else "interrupt"
        wait = random.random() < 0.3
        queued = i % 2 == 1
        ahead: Row | None = None
        if queued:
            ahead = await api.create_run(thread_id, ms=ahead_duration.around())
        # Long enough that the race is with its start, not its end (a 409 is rare).
        ms = random.uniform(20, 60)
        stream = None
        if i % 4 >= 2:  # created by a streaming request, which must end with the run
            run_id, stream = await api.create_streamed(thread_id, ms)
            run: Row = {"run_id": run_id}
        else:
            run = await api.create_run(thread_id, ms=ms)
            assert run["status"] == "pending", run
        await asyncio.sleep((queued_delay if queued else idle_delay).upto())
        code, body = await api.cancel(thread_id, run["run_id"], action=action, wait=wait)
        kind = check_answer(code, body, wait=wait)
        variant = "queued" if queued else "idle"
        if kind == "accepted":
            assert body["cancel_action"] == action, body
            if not api.cancel_retried(thread_id, run["run_id"]):
                assert body["cancel_outcome"] == "recorded", body
            if wait:  # a 200 shows the run's end, not what the cancel landed on
                split[f"{variant}: accepted (wait)"] += 1
            else:
                # The run as the store held it when the cancel landed: still pending
                # (so already `interrupted`, in the row or its rollback's tombstone),
                # or running (and stopping).
                assert body["status"] in ("running", "interrupted"), body
                landed = "running" if body["status"] == "running" else "pending"
                split[f"{variant}: cancel landed on {landed}"] += 1
                if queued:
                    queued_delay.observe(landed == "pending")
                    ahead_duration.observe(landed == "pending")
                else:
                    idle_delay.observe(landed == "pending")
        else:
            assert body["status"] == "success", body
            split[f"{variant}: too late (409 success)"] += 1
        if stream is not None:
            names = await stream
            assert names[0] == "metadata" and "error" not in names, names
            if kind == "refused":
                assert "values" in names, names
        # A later run on the same thread still starts (nothing stranded pending).
        later = await api.run_and_wait(thread_id)
        spans = later.get("spans") or []
        assert spans and spans[-1]["overlap"] == 0, later
        ran = {s["run_id"] for s in spans}
        rows = {r["run_id"]: r for r in (await api.call(
            "GET", f"/threads/{thread_id}/runs", params={"limit": 10}, expect={200})).json()}
        assert all(r["status"] in TERMINAL for r in rows.values()), rows
        assert all(r["status"] == "success" for r in rows.values()
                   if r["run_id"] != run["run_id"]), rows
        if ahead is not None:
            assert ahead["run_id"] in ran, (ahead, spans)
        final = rows.get(run["run_id"])
        if final is None:
            final = await api.final(thread_id, run["run_id"])
        check_final(kind, body, final, action)
        if kind == "accepted" and action == "rollback":
            assert run["run_id"] not in ran, f"rolled back, but its writes remain: {spans}"
        if kind == "refused":
            assert run["run_id"] in ran, spans
        assert ran <= {run["run_id"], later_id(rows, run, ahead)} | (
            {ahead["run_id"]} if ahead else set()), spans
        # Repeat (invariant 3): the same verdict.
        code2, body2 = await api.cancel(thread_id, run["run_id"], action=action)
        assert check_answer(code2, body2, wait=False) == kind, (code2, body2)
        thread = await api.thread(thread_id)
        assert thread["status"] == "idle", thread

    try:
        await run_trials(n_trials, trial)
    finally:
        report(capsys, "cancel vs start", n_trials, started, api, split, idle_delay_s=idle_delay,
               queued_delay_s=queued_delay, ahead_duration_ms=ahead_duration)
        await api.close()
    on_pending = sum(v for k, v in split.items() if k.endswith("landed on pending"))
    on_running = sum(v for k, v in split.items() if k.endswith("landed on running"))
    assert min(on_pending, on_running) >= minimum(50, race_server), split
    check_log(race_server, started, capsys)


def later_id(rows: dict[str, Row], *earlier: Row | None) -> str:
    """The one run of `rows` that is none of `earlier`."""
    (run_id,) = set(rows) - {r["run_id"] for r in earlier if r is not None}
    return run_id


# ------------------------------------------------------------------- family 4


async def test_double_texting_races_completion(race_server: ServerProcess, capsys) -> None:
    """Run A finishing in a few ms; at a random instant around its end, run B with
    multitask_strategy interrupt or rollback (through the SDK). A ends `success` or
    `interrupted` (interrupt) / `success` or removed (rollback); B always runs and
    succeeds; B never starts before A is terminal (timestamps and an in-process
    overlap counter in the graph); a rollback never loses a checkpoint that existed
    before A started, and removes exactly what A wrote."""
    api = Api(race_server)
    split: collections.Counter[str] = collections.Counter()
    delays = {"interrupt": delay_tuner(), "rollback": delay_tuner()}
    durations = {"interrupt": duration_tuner(), "rollback": duration_tuner()}
    n_trials = scaled(600, race_server)
    started = Clock(race_server)

    async def trial(i: int) -> None:
        thread_id = str(uuid.uuid4())
        strategy = "interrupt" if i % 2 == 0 else "rollback"
        before = await api.run_and_wait(thread_id)  # history from before A
        assert len(before["spans"]) == 1, before
        history_before = await api.history(thread_id) if strategy == "rollback" else {}
        a = await api.sdk.runs.create(thread_id, "timed",
                                      input={"ms": durations[strategy].around()})
        await asyncio.sleep(delays[strategy].upto())
        b = await api.sdk.runs.create(thread_id, "timed", input={"ms": 0},
                                      multitask_strategy=strategy)
        values = await api.sdk.runs.join(thread_id, b["run_id"])
        rows = {r["run_id"]: r for r in (await api.call(
            "GET", f"/threads/{thread_id}/runs", params={"limit": 10}, expect={200})).json()}
        final_b = rows[b["run_id"]]
        assert final_b["status"] == "success", final_b
        final_a = rows.get(a["run_id"])
        if final_a is None:
            final_a = await api.final(thread_id, a["run_id"])  # checks the tombstone
        spans = values.get("spans") or []
        by_run = {s["run_id"]: s for s in spans}
        assert all(s["overlap"] == 0 for s in spans), spans  # never two at once
        assert spans[0] == before["spans"][0], spans
        assert spans[-1]["run_id"] == b["run_id"], spans
        b_start = by_run[b["run_id"]]["start"]
        # A was final before B's node began: A's row's updated_at is the instant it
        # ended (for a rolled-back A, its tombstone's: the instant it was removed).
        assert ts(final_a["updated_at"]) <= b_start, (final_a, spans)
        if final_a.get("removed"):
            assert strategy == "rollback", final_a
            assert final_a["cancel_reason"] == "multitask_rollback", final_a
            assert a["run_id"] not in by_run, f"rolled back, but A's writes remain: {spans}"
            outcome = "A rolled back"
        elif final_a["status"] == "interrupted":
            assert strategy == "interrupt", final_a
            assert final_a["cancel_reason"] == "multitask_interrupt", final_a
            outcome = "A interrupted"
        else:
            assert final_a["status"] == "success" and final_a["cancel_action"] is None, final_a
            assert by_run[a["run_id"]]["end"] <= b_start, spans
            outcome = "A success"
        delays[strategy].observe(outcome != "A success")
        durations[strategy].observe(outcome != "A success")
        split[f"{strategy}: {outcome}"] += 1
        expected = [before["spans"][0]["run_id"]] + (
            [a["run_id"]] if outcome == "A success" else []) + [b["run_id"]]
        ids = [s["run_id"] for s in spans]
        if outcome == "A interrupted":  # stopped mid-node, or just after it returned
            ids = [run_id for run_id in ids if run_id != a["run_id"]]
        assert ids == expected, spans
        if strategy == "rollback":
            history = await api.history(thread_id)
            missing = set(history_before) - set(history)
            assert not missing, f"rollback lost checkpoints from before A: {missing}"
            if outcome == "A rolled back":
                left = [cid for cid, run_id in history.items() if run_id == a["run_id"]]
                assert not left, f"A was rolled back, but its checkpoints remain: {left}"
        thread = await api.thread(thread_id)
        assert thread["status"] == "idle", thread

    try:
        await run_trials(n_trials, trial)
    finally:
        report(capsys, "double-texting vs completion", n_trials, started, api, split,
               delay_s=delays, duration_ms=durations)
        await api.close()
    for strategy, cancelled in (("interrupt", "A interrupted"), ("rollback", "A rolled back")):
        assert split[f"{strategy}: A success"] >= minimum(40, race_server), split
        assert split[f"{strategy}: {cancelled}"] >= minimum(40, race_server), split
    check_log(race_server, started, capsys)
