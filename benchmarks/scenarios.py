"""The measurements. Each scenario takes a `Target` (a server plus langgraph_sdk and raw
httpx clients for it) and returns a dict of metrics and raw samples, as JSON-able data.

All times are measured on the client with `time.perf_counter()`, so they are what a
client observes, including its own HTTP overhead.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx
import orjson
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import APIStatusError
from lean_http import LeanConnection
from servers import Server

TERMINAL = {"success", "error", "timeout", "interrupted"}
# `sleepy` loops once per tick: lift LangGraph's recursion limit so it never ends by itself.
SLEEPY_CONFIG = {"recursion_limit": 10_000_000}
SLEEPY_FOREVER = 1_000_000  # steps


class Target:
    """A server under test and the clients that talk to it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.AsyncClient(
            base_url=server.url,
            timeout=httpx.Timeout(connect=5, read=300, write=300, pool=30),
            limits=httpx.Limits(max_connections=128, max_keepalive_connections=128),
        )
        self.client = LangGraphClient(self.http)  # the official SDK over our pool

    @property
    def name(self) -> str:
        return self.server.name

    async def aclose(self) -> None:
        await self.http.aclose()


# ------------------------------------------------------------------ helpers


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def gather_limited(n: int, limit: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(i: int) -> Any:
        async with semaphore:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def new_threads(t: Target, n: int) -> list[str]:
    threads = await gather_limited(n, 16, lambda _: t.client.threads.create())
    return [th["thread_id"] for th in threads]


async def start_sleepy(t: Target, thread_id: str, delay: float) -> dict[str, Any]:
    return await t.client.runs.create(
        thread_id, "sleepy", input={"steps": SLEEPY_FOREVER, "delay": delay},
        config=SLEEPY_CONFIG,
    )


async def poll_until(t: Target, thread_id: str, run_id: str, done: Callable[[str], bool],
                     timeout: float = 30.0) -> tuple[str, int]:
    """Poll `runs.get` back to back until `done(status)`; (status, polls)."""
    deadline = time.perf_counter() + timeout
    polls = 0
    while True:
        run = await t.client.runs.get(thread_id, run_id)
        polls += 1
        if done(run["status"]) or time.perf_counter() > deadline:
            return run["status"], polls


async def settle(t: Target, thread_id: str, run_id: str) -> None:
    """Best effort: make sure a run we started is stopped before the next sample."""
    try:
        await t.client.runs.cancel(thread_id, run_id, wait=True)
    except APIStatusError:
        pass  # already finished / the reference's 404 for an already-cancelled run
    await poll_until(t, thread_id, run_id, lambda s: s in TERMINAL, timeout=10)


# ------------------------------------------------------------------ scenarios


async def lifecycle(t: Target, n: int, max_seconds: float, delay: float = 0.05,
                    settle_s: float = 0.06) -> dict[str, Any]:
    """Create-to-running and cancel latencies, one run at a time.

    For each of `n` `sleepy` runs (fewer, at least 4, if that takes over
    `max_seconds`: the reference starts about one run per second), on a fresh thread:

    1. create-to-running: `runs.create`, then `runs.get` back to back until the run
       is no longer `pending`;
    2. let it tick once (`settle_s`), then cancel it, alternating:
       - `runs.cancel(wait=False)`: time to the answer (ack), then `runs.get` back to
         back until a terminal status (observed stop, from the cancel request);
       - `runs.cancel(wait=True)`: time to the answer (stopped), then one `runs.get`
         to check the run is `interrupted` at that moment.
    """
    c2r, polls, ack, observed, stopped = [], [], [], [], []
    at_answer: dict[str, int] = {}
    final: dict[str, int] = {}
    anomalies: list[str] = []
    deadline = time.perf_counter() + max_seconds
    for i, thread_id in enumerate(await new_threads(t, n)):
        if i >= 4 and time.perf_counter() > deadline:
            break
        start = time.perf_counter()
        run = await start_sleepy(t, thread_id, delay)
        rid = run["run_id"]
        status, count = await poll_until(t, thread_id, rid, lambda s: s != "pending")
        c2r.append(ms(time.perf_counter() - start))
        polls.append(count)
        if status != "running":
            anomalies.append(f"run not running 30 s after its creation: {status}")
            await settle(t, thread_id, rid)
            continue
        await asyncio.sleep(settle_s)
        wait = i % 2 == 1
        start = time.perf_counter()
        try:
            await t.client.runs.cancel(thread_id, rid, wait=wait)
        except APIStatusError as exc:
            anomalies.append(f"cancel(wait={wait}) of a running run: "
                             f"HTTP {exc.response.status_code}")
            await settle(t, thread_id, rid)
            continue
        answered = time.perf_counter() - start
        if not wait:
            ack.append(ms(answered))
            status, _ = await poll_until(t, thread_id, rid, lambda s: s in TERMINAL, timeout=15)
            observed.append(ms(time.perf_counter() - start))
        else:
            stopped.append(ms(answered))
            status = (await t.client.runs.get(thread_id, rid))["status"]
            at_answer[status] = at_answer.get(status, 0) + 1
            if status != "interrupted":
                anomalies.append(f"cancel(wait=True) answered while the run was {status!r}")
                status, _ = await poll_until(t, thread_id, rid, lambda s: s in TERMINAL,
                                             timeout=15)
        final[status] = final.get(status, 0) + 1
        if status != "interrupted":
            anomalies.append(f"a cancelled run ended {status!r}")
    return {
        "c2r_p50_ms": percentile(c2r, 50), "c2r_p99_ms": percentile(c2r, 99),
        "ack_p50_ms": percentile(ack, 50), "ack_p99_ms": percentile(ack, 99),
        "observed_stop_p50_ms": percentile(observed, 50),
        "observed_stop_p99_ms": percentile(observed, 99),
        "stop_p50_ms": percentile(stopped, 50), "stop_p99_ms": percentile(stopped, 99),
        "c2r_ms": c2r, "polls": polls, "ack_ms": ack, "observed_stop_ms": observed,
        "stop_ms": stopped, "status_after_wait_answer": at_answer, "final_status": final,
        "anomalies": anomalies,
    }


async def _waits(t: Target, thread_ids: Iterable[str] | None, n: int, clients: int,
                 latencies: list[float], errors: list[str], deadline: float = math.inf,
                 lean: bool = False) -> None:
    """`n` trivial `runs.wait` calls from `clients` concurrent clients, none started
    after `deadline`. Without `thread_ids`, each run first creates its own thread.
    `lean`: each client is a `LeanConnection` (see lean_http.py) instead of the SDK."""
    ids = iter(thread_ids) if thread_ids is not None else None
    remaining = iter(range(n))
    body = orjson.dumps({"assistant_id": "trivial", "input": {}})

    async def client() -> None:
        conn = LeanConnection(t.server.url) if lean else None
        try:
            for _ in remaining:  # shared iterator: the clients split the work
                if time.perf_counter() > deadline:
                    return
                try:
                    thread_id = next(ids) if ids is not None else (
                        await t.client.threads.create())["thread_id"]
                    start = time.perf_counter()
                    if conn is None:
                        result = await t.client.runs.wait(thread_id, "trivial", input={})
                    else:
                        status, data = await conn.post_json(
                            f"/threads/{thread_id}/runs/wait", body)
                        if status != 200:
                            raise RuntimeError(f"HTTP {status}: {data[:120]!r}")
                        result = orjson.loads(data)
                except Exception as exc:  # noqa: BLE001 - a benchmark records, never stops
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    if conn is not None:
                        await conn.aclose()  # a half-read response: start afresh
                    continue
                latencies.append(time.perf_counter() - start)
                if not isinstance(result, dict) or result.get("n") != 2:
                    errors.append(f"unexpected result {result!r}"[:200])
        finally:
            if conn is not None:
                await conn.aclose()

    await asyncio.gather(*(client() for _ in range(clients)))


async def wait_throughput(t: Target, n: int, clients: int, max_seconds: float,
                          thread_ids: list[str] | None = None,
                          lean: bool = False) -> dict[str, Any]:
    """`n` trivial runs through `runs.wait` (fewer if that takes over `max_seconds`),
    one fresh thread per run (threads are created before the clock starts); through
    the SDK, or (`lean`) through lean_http's minimal client."""
    thread_ids = thread_ids or await new_threads(t, n)
    latencies: list[float] = []
    errors: list[str] = []
    cpu_server, cpu_client = t.server.cpu_seconds(), time.process_time()
    start = time.perf_counter()
    await _waits(t, thread_ids, n, clients, latencies, errors, start + max_seconds, lean)
    elapsed = time.perf_counter() - start
    cpu_server = t.server.cpu_seconds() - cpu_server
    cpu_client = time.process_time() - cpu_client
    return {
        "runs_per_s": len(latencies) / elapsed,
        "elapsed_s": elapsed,
        "completed": len(latencies),
        "latency_p50_ms": ms(percentile(latencies, 50)),
        "latency_p99_ms": ms(percentile(latencies, 99)),
        "server_cpu_ms_per_run": ms(cpu_server / max(len(latencies), 1)),
        "server_cpu_util": cpu_server / elapsed,
        "client_cpu_util": cpu_client / elapsed,
        "errors": errors[:20],
        "error_count": len(errors),
    }


async def sse_throughput(t: Target, count: int) -> dict[str, Any]:
    """One `emitter` run of `count` custom events, streamed on a fresh thread: once
    through `langgraph_sdk` and once through a bare httpx line reader."""
    thread_id, raw_thread = await new_threads(t, 2)

    start = time.perf_counter()
    first_event = None
    sdk_events = 0
    async for part in t.client.runs.stream(
        thread_id, "emitter", input={"count": count}, stream_mode="custom"
    ):
        if part.event == "custom":
            sdk_events += 1
            if first_event is None:
                first_event = time.perf_counter() - start
    sdk_elapsed = time.perf_counter() - start

    start = time.perf_counter()
    raw_events = 0
    body = {"assistant_id": "emitter", "input": {"count": count}, "stream_mode": ["custom"]}
    async with t.http.stream("POST", f"/threads/{raw_thread}/runs/stream", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if line == "event: custom":
                raw_events += 1
    raw_elapsed = time.perf_counter() - start

    anomalies = [f"{name} reader got {got} of {count} events"
                 for name, got in (("sdk", sdk_events), ("raw", raw_events)) if got != count]
    return {
        "sdk_events_per_s": sdk_events / sdk_elapsed, "sdk_elapsed_s": sdk_elapsed,
        "sdk_first_event_ms": ms(first_event or math.nan),
        "raw_events_per_s": raw_events / raw_elapsed, "raw_elapsed_s": raw_elapsed,
        "sdk_events": sdk_events, "raw_events": raw_events, "anomalies": anomalies,
    }


AGENT_QUESTION = "What's the weather in Paris?"
AGENT_ANSWER = "Here is what I found. get_weather: sunny, 21 °C in Paris"


async def _agent_turn(t: Target, thread_id: str) -> tuple[float, float, str]:
    """One turn: (time to the first token, time to the end, the answer's text)."""
    body = {"messages": [{"role": "user", "content": AGENT_QUESTION}]}
    start = time.perf_counter()
    first = math.nan
    answer: list[str] = []
    async for part in t.client.runs.stream(thread_id, "agent", input=body,
                                           stream_mode="messages-tuple",
                                           context={"token_delay": 0}):
        if part.event == "messages":
            message = part.data[0]
            if math.isnan(first):
                first = time.perf_counter() - start
            if message.get("type") == "tool":
                answer.clear()  # what follows the tool's result is the answer
            elif isinstance(message.get("content"), str):
                answer.append(message["content"])
        elif part.event == "error":
            raise RuntimeError(f"error event: {part.data}")
    return first, time.perf_counter() - start, "".join(answer)


async def agent_turns(t: Target, n: int, clients: int, max_seconds: float) -> dict[str, Any]:
    """`n` chat turns of the demo's ReAct agent (`agent`: a model call streaming a tool
    call, the weather tool, a model call streaming the answer) through `runs.stream` with
    `messages-tuple`, from `clients` concurrent clients, one fresh thread per turn. The
    fake model's `token_delay` is 0: what is timed is the server's share of a real turn
    (checkpoints, tool node, token events), not the model's."""
    thread_ids = iter(await new_threads(t, n))
    first_tokens: list[float] = []
    latencies: list[float] = []
    errors: list[str] = []

    async def client(deadline: float) -> None:
        for thread_id in thread_ids:  # shared iterator: the clients split the work
            if time.perf_counter() > deadline:
                return
            try:
                first, latency, answer = await _agent_turn(t, thread_id)
            except Exception as exc:  # noqa: BLE001 - a benchmark records, never stops
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            first_tokens.append(first)
            latencies.append(latency)
            if answer != AGENT_ANSWER:
                errors.append(f"unexpected answer {answer!r}"[:200])

    cpu_server = t.server.cpu_seconds()
    start = time.perf_counter()
    await asyncio.gather(*(client(start + max_seconds) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    cpu_server = t.server.cpu_seconds() - cpu_server
    return {
        "turns_per_s": len(latencies) / elapsed,
        "elapsed_s": elapsed,
        "completed": len(latencies),
        "first_token_p50_ms": ms(percentile(first_tokens, 50)),
        "latency_p50_ms": ms(percentile(latencies, 50)),
        "latency_p99_ms": ms(percentile(latencies, 99)),
        "server_cpu_ms_per_turn": ms(cpu_server / max(len(latencies), 1)),
        "errors": errors[:20],
        "error_count": len(errors),
    }


async def _settled_rss(server: Server) -> int:
    """RSS of the server's process tree once it is idle: the least of a few samples
    (the reference pickles its whole state every 10 s, which briefly inflates RSS)."""
    await asyncio.sleep(2.0)
    samples = []
    for _ in range(6):
        samples.append(server.rss_bytes())
        await asyncio.sleep(0.25)
    return min(samples)


async def memory_growth(t: Target, warmup: int, n: int, clients: int,
                        max_seconds: float) -> dict[str, Any]:
    """RSS growth over `n` trivial `runs.wait` runs (one new thread each; fewer if that
    takes over `max_seconds`) after `warmup` runs, per 1,000 runs."""
    latencies: list[float] = []
    errors: list[str] = []
    await _waits(t, None, warmup, clients, latencies, errors)
    before = await _settled_rss(t.server)
    latencies.clear()
    start = time.perf_counter()
    await _waits(t, None, n, clients, latencies, errors, start + max_seconds)
    elapsed = time.perf_counter() - start
    after = await _settled_rss(t.server)
    mb = 1024 * 1024
    return {
        "rss_before_mb": before / mb, "rss_after_mb": after / mb,
        "mb_per_1000_runs": ((after - before) / mb / len(latencies) * 1000
                             if latencies else math.nan),
        "completed": len(latencies), "elapsed_s": elapsed,
        "errors": errors[:20], "error_count": len(errors),
    }


async def warm_up(t: Target) -> dict[str, Any]:
    """Import paths, caches and connection pools on both sides, one of each kind."""
    latencies: list[float] = []
    errors: list[str] = []
    await _waits(t, None, 40, 8, latencies, errors)
    if errors:
        raise RuntimeError(f"{t.name}: trivial runs fail during warm-up: {errors[0]}")
    for thread_id in await new_threads(t, 3):
        run = await start_sleepy(t, thread_id, 0.05)
        await poll_until(t, thread_id, run["run_id"], lambda s: s != "pending")
        await settle(t, thread_id, run["run_id"])
    await sse_throughput(t, 500)
    for thread_id in await new_threads(t, 2):
        _, _, answer = await _agent_turn(t, thread_id)
        if answer != AGENT_ANSWER:
            raise RuntimeError(f"{t.name}: the agent answers {answer!r} during warm-up")
    return {}
