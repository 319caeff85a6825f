"""The cross-process run event transport on Redis Streams, against a real Redis.

Every test uses its own key prefix and deletes its keys afterwards. Without a
reachable Redis (RUNLANE_TEST_REDIS, default redis://127.0.0.1:6379/0) the tests are
skipped with a `requires_redis` reason, or fail where Redis is required
(RUNLANE_REQUIRE_SERVICES=1, as CI sets, or RUNLANE_REQUIRE_REDIS=1).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis as redis_sync

from runlane.streams.local import HEARTBEAT, RunEventLog
from runlane.streams.redis import (
    INCOMPLETE_FRAME,
    ForwardOutcome,
    RedisEventBridge,
    RedisRunStreams,
    StreamEnded,
    StreamGone,
    StreamState,
)

REDIS_URL = os.environ.get("RUNLANE_TEST_REDIS", "redis://127.0.0.1:6379/0")

pytestmark = pytest.mark.requires_redis

_ID = re.compile(rb"\nid: (\d+)\n\n$")


def _redis_problem() -> str | None:
    try:
        client = redis_sync.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="module")
def redis_available() -> None:
    problem = _redis_problem()
    if problem is None:
        return
    message = f"requires_redis: Redis unreachable at {REDIS_URL} ({problem})"
    if os.environ.get("RUNLANE_REQUIRE_SERVICES") or os.environ.get("RUNLANE_REQUIRE_REDIS"):
        pytest.fail(message.replace("requires_redis:", "requires_redis (required here):"),
                    pytrace=False)
    pytest.skip(message)


@pytest.fixture
async def prefix(redis_available: None) -> AsyncIterator[str]:
    value = f"runlane-test-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    yield value
    client = redis_sync.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{value}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def streams(prefix: str) -> AsyncIterator[RedisRunStreams]:
    s = RedisRunStreams(REDIS_URL, prefix=prefix, max_block=1.0)
    yield s
    await s.aclose()


@pytest.fixture
async def bridge(prefix: str) -> AsyncIterator[RedisEventBridge]:
    b = RedisEventBridge(REDIS_URL, prefix=prefix, max_block=1.0, max_batch=128)
    yield b
    await b.aclose(timeout=2)


# ------------------------------------------------------------------ helpers


def frames_of(data: bytes) -> list[bytes]:
    return [part + b"\n\n" for part in data.split(b"\n\n") if part and part + b"\n\n" != HEARTBEAT]


def ids_of(frames: list[bytes]) -> list[int]:
    out = []
    for frame in frames:
        match = _ID.search(frame)
        assert match, frame
        out.append(int(match.group(1)))
    return out


NAMES = ["values", "updates", "messages|sub:1", "custom", "updates|a|b", "messages"]


def publish_some(event_log: RunEventLog, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        event_log.publish(NAMES[i % len(NAMES)], {"i": i, "text": "x" * (i % 40)})


async def collect(iterator: AsyncIterator[bytes], timeout: float = 10.0) -> bytes:
    async def run() -> bytes:
        return b"".join([batch async for batch in iterator if batch != HEARTBEAT])

    return await asyncio.wait_for(run(), timeout)


async def local_follow(event_log: RunEventLog, after: int = 0, modes=None) -> bytes:
    return await collect(event_log.follow(after, modes))


async def read_until_id(iterator: AsyncIterator[bytes], last_id: int, timeout: float = 10) -> bytes:
    """Read a live follow until the frame with `last_id`, then drop it."""
    got = b""
    try:
        async with asyncio.timeout(timeout):
            async for batch in iterator:
                if batch == HEARTBEAT:
                    continue
                got += batch
                if ids_of(frames_of(got))[-1] >= last_id:
                    break
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]
    return got


async def wait_redis_has(s: RedisRunStreams, run_id: str, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while await s.last_event_id(run_id) < count:
        assert time.monotonic() < deadline, "events did not reach Redis"
        await asyncio.sleep(0.01)


class TcpProxy:
    """A TCP relay to Redis that the test can take down and bring back (an outage)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers.discard(writer)
        self.writers.discard(up_writer)


def redis_host_port() -> tuple[str, int]:
    kwargs = redis_sync.connection.parse_url(REDIS_URL)
    return kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379))


# -------------------------------------------------------------------- tests


async def test_frames_identical_to_local_and_replay_from_every_id(
    bridge: RedisEventBridge,
) -> None:
    run_id = uuid.uuid4().hex
    event_log = RunEventLog()
    task = bridge.forward(run_id, event_log)
    publish_some(event_log, 300)
    event_log.close()
    assert await task is ForwardOutcome.ENDED
    assert await bridge.state(run_id) is StreamState.ENDED

    whole = b"".join(event_log.frames)
    assert await collect(bridge.follow(run_id)) == whole
    modes = frozenset({"messages", "values"})
    assert await collect(bridge.follow(run_id, 0, modes)) == await local_follow(event_log, 0, modes)
    for after in [*range(0, 300, 7), 299, 300, 301, 10_000]:
        assert await collect(bridge.follow(run_id, after)) == await local_follow(event_log, after)


async def test_replay_from_any_id_during_and_after_the_run(bridge: RedisEventBridge) -> None:
    run_id = uuid.uuid4().hex
    event_log = RunEventLog()
    task = bridge.forward(run_id, event_log)
    publish_some(event_log, 100)
    await wait_redis_has(bridge.streams, run_id, 100)
    assert await bridge.state(run_id) is StreamState.LIVE

    for after in (0, 1, 37, 99):  # live: replay, then it keeps tailing
        got = await read_until_id(bridge.follow(run_id, after, heartbeat=0.2), 100)
        assert got == b"".join(event_log.frames[after:])

    # Live, caught up: heartbeats, then new events as they come.
    follower = bridge.follow(run_id, 100, heartbeat=0.1)
    assert await asyncio.wait_for(anext(follower), 2) == HEARTBEAT
    publish_some(event_log, 5, start=100)
    got = await read_until_id(follower, 105)
    assert got == b"".join(event_log.frames[100:105])

    event_log.close()
    assert await task is ForwardOutcome.ENDED
    for after in (0, 1, 37, 99, 104, 105, 200):
        assert await collect(bridge.follow(run_id, after)) == b"".join(event_log.frames[after:])


async def test_exact_resume_at_random_disconnects_while_publishing(prefix: str) -> None:
    """A publisher writes thousands of events while followers (each with its own
    connections) drop at random points, some in the middle of a blocking read, and
    resume from their last id: each ends with exactly every event, in order."""
    rng = random.Random(7)
    total = 5000
    publisher = RedisEventBridge(REDIS_URL, prefix=prefix, max_batch=64, max_block=0.5)
    run_id = uuid.uuid4().hex
    event_log = RunEventLog()
    forwarding = publisher.forward(run_id, event_log)

    async def publish() -> None:
        published = 0
        while published < total:
            burst = min(total - published, rng.randint(1, 60))
            publish_some(event_log, burst, start=published)
            published += burst
            await asyncio.sleep(rng.choice((0, 0.001, 0.01, 0.03)))
        event_log.close()

    async def follower(seed: int, modes: frozenset[str] | None) -> tuple[bytes, int]:
        local_rng = random.Random(seed)
        s = RedisRunStreams(REDIS_URL, prefix=prefix, max_block=0.5)
        received, last_id, reconnects = b"", 0, 0
        try:
            while True:
                stream = s.follow(run_id, last_id, modes, heartbeat=0.05)
                ended = True
                keep = local_rng.randint(1, 6)
                try:
                    while True:
                        if local_rng.random() < 0.15:
                            # Drop in the middle of a (possibly blocking) read.
                            batch = await asyncio.wait_for(anext(stream),
                                                           local_rng.uniform(0, 0.004))
                        else:
                            batch = await anext(stream)
                        if batch != HEARTBEAT:
                            received += batch
                            last_id = ids_of(frames_of(batch))[-1]
                        keep -= 1
                        if keep == 0:
                            ended = False
                            break
                except StopAsyncIteration:
                    pass
                except TimeoutError:
                    ended = False
                finally:
                    await stream.aclose()  # type: ignore[attr-defined]
                if ended:
                    return received, reconnects
                reconnects += 1
        finally:
            await s.aclose()

    modes = frozenset({"updates", "custom"})
    results = await asyncio.wait_for(
        asyncio.gather(publish(), *(follower(i, None) for i in range(4)), follower(99, modes)),
        25,
    )
    assert await forwarding is ForwardOutcome.ENDED
    whole = b"".join(event_log.frames)
    for received, reconnects in results[1:5]:
        assert ids_of(frames_of(received)) == list(range(1, total + 1))
        assert received == whole
        assert reconnects > 20
    filtered, _ = results[5]
    assert filtered == await local_follow(event_log, 0, modes)
    await publisher.aclose()


FOLLOWER_SCRIPT = r"""
import asyncio, sys
from runlane.streams.redis import RedisRunStreams
async def main():
    s = RedisRunStreams(sys.argv[1], prefix=sys.argv[2], max_block=0.5)
    out = bytearray()
    async for batch in s.follow(sys.argv[3], int(sys.argv[4]), heartbeat=0.2):
        if batch != b": heartbeat\n\n":
            out += batch
    await s.aclose()
    sys.stdout.buffer.write(bytes(out))
asyncio.run(main())
"""


async def test_followers_in_other_processes(bridge: RedisEventBridge, prefix: str) -> None:
    run_id = uuid.uuid4().hex
    event_log = RunEventLog()
    task = bridge.forward(run_id, event_log)
    publish_some(event_log, 50)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", FOLLOWER_SCRIPT, REDIS_URL, prefix, run_id, str(after),
            stdout=asyncio.subprocess.PIPE,
        )
        for after in (0, 25, 2000)
    ]
    for i in range(50, 3000, 50):  # publish live while they start and follow
        publish_some(event_log, 50, start=i)
        await asyncio.sleep(0.005)
    event_log.close()
    assert await task is ForwardOutcome.ENDED
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 20)
    assert [p.returncode for p in procs] == [0, 0, 0]
    for (stdout, _), after in zip(outputs, (0, 25, 2000), strict=True):
        assert stdout == b"".join(event_log.frames[after:])


async def test_end_marker_ends_every_follower(prefix: str, streams: RedisRunStreams) -> None:
    run_id, pending_id = uuid.uuid4().hex, uuid.uuid4().hex
    for i in range(1, 4):
        await streams.publish(run_id, i, "values", {"i": i})
    other = RedisRunStreams(REDIS_URL, prefix=prefix, max_block=1.0)  # another "worker"
    try:
        followers = [
            asyncio.create_task(collect(other.follow(run_id, after, heartbeat=0.1), 5))
            for after in (0, 1, 3, 3, 50)
        ] + [
            # A run still pending: no stream yet; the end (a cancelled pending run) wakes it.
            asyncio.create_task(collect(other.follow(pending_id, 0, heartbeat=0.1), 5)),
        ]
        waiting = asyncio.create_task(other.wait_ended(run_id, timeout=5))
        await asyncio.sleep(0.3)
        assert not any(f.done() for f in followers)
        started = time.monotonic()
        assert await streams.end(run_id)
        assert await streams.end(pending_id)
        results = await asyncio.gather(*followers)
        assert await waiting
        assert time.monotonic() - started < 1.0
        assert [len(frames_of(r)) for r in results] == [3, 2, 0, 0, 0, 0]
        assert await streams.state(pending_id) is StreamState.ENDED
        # A client joining a finished run's stream gets its end at once.
        assert await collect(other.follow(run_id, 3), 1) == b""
        assert await other.wait_ended(run_id, timeout=0.1)
    finally:
        await other.aclose()


async def test_end_is_idempotent_from_two_processes_at_once(
    prefix: str, streams: RedisRunStreams
) -> None:
    other = RedisRunStreams(REDIS_URL, prefix=prefix)
    try:
        for n in range(20):
            run_id = uuid.uuid4().hex
            for i in range(1, n % 4 + 1):
                await streams.publish(run_id, i, "values", {"i": i})
            error = {"error": "WorkerLost", "message": "the worker running this run was lost"}
            results = await asyncio.gather(
                streams.end(run_id, final_event=("error", error)),
                other.end(run_id, final_event=("error", error)),
                other.end(run_id),
            )
            assert sorted(results) == [False, False, True]
            entries = await streams.client.xrange(streams.key(run_id))
            # Exactly one end, last; at most one error event, right before it.
            assert entries[-1][0] == b"1-0"
            assert [e for e, _ in entries].count(b"1-0") == 1
            event_ids = [int(e.split(b"-")[1]) for e, _ in entries[:-1]]
            assert event_ids == list(range(1, len(event_ids) + 1))
            errors = [f for _, f in entries if f.get(b"n") == b"error"]
            assert len(errors) == (1 if results[0] or results[1] else 0)
            if errors:
                frames = frames_of(await collect(streams.follow(run_id)))
                assert frames[-1].startswith(b"event: error\ndata: {")
                assert ids_of(frames) == list(range(1, len(frames) + 1))
    finally:
        await other.aclose()


async def test_a_late_publish_after_the_end_is_refused(streams: RedisRunStreams) -> None:
    run_id = uuid.uuid4().hex
    for i in range(1, 6):
        assert await streams.publish(run_id, i, "values", {"i": i}) == i
    assert await streams.publish(run_id, 3, "values", {"i": 3}) == 5  # a resend: skipped
    assert await streams.publish(run_id, 9, "values", {"i": 9}) == 5  # a gap: refused, rewind
    assert await streams.end(run_id)
    before = await streams.client.xrange(streams.key(run_id))
    for first in (6, 1, 100):
        with pytest.raises(StreamEnded):
            await streams.publish(run_id, first, "values", {"late": True})
    assert await streams.client.xrange(streams.key(run_id)) == before
    assert await streams.last_event_id(run_id) == 5

    # Once the ended stream expired (simulated), a late append does not recreate it.
    await streams.client.delete(streams.key(run_id))
    with pytest.raises(StreamGone):
        await streams.publish(run_id, 6, "values", {"late": True})
    assert await streams.state(run_id) is StreamState.MISSING


async def test_appends_of_many_runs_in_one_call_each_answered_as_alone(
        streams: RedisRunStreams) -> None:
    """Appends handed over in the same tick go to Redis in one script call
    (redis_appends.py); each run's batch is checked and answered as if alone: an
    ended stream refuses, a missing one accepts only id 1, a resend is skipped, a gap
    rewinds, and the others land."""
    ended, live, missing, fresh, gap = (uuid.uuid4().hex for _ in range(5))
    assert await streams.publish(ended, 1, "values", {"i": 1}) == 1
    assert await streams.end(ended)
    for i in (1, 2, 3):
        assert await streams.publish(live, i, "values", {"i": i}) == i
        assert await streams.publish(gap, i, "values", {"i": i}) == i

    def frame(i: int) -> tuple[str, bytes]:
        return "values", b"event: values\ndata: {}\nid: %d\n\n" % i

    answers = await asyncio.gather(
        streams.append(ended, 2, [frame(2)]),
        streams.append(live, 2, [frame(2), frame(3), frame(4), frame(5)]),  # 2, 3: resent
        streams.append(missing, 4, [frame(4)]),
        streams.append(fresh, 1, [frame(1), frame(2)]),
        streams.append(gap, 7, [frame(7)]),
        return_exceptions=True)
    assert isinstance(answers[0], StreamEnded)
    assert answers[1] == 5
    assert isinstance(answers[2], StreamGone)
    assert answers[3] == 2
    assert answers[4] == 3  # refused: the forwarder rewinds to 3
    assert [int(i.split(b"-")[1]) for i, _ in await streams.client.xrange(streams.key(live))
            ] == [1, 2, 3, 4, 5]
    assert await streams.state(missing) is StreamState.MISSING
    assert await streams.last_event_id(fresh) == 2
    assert await streams.last_event_id(gap) == 3
    # The frames stored are the ones handed over, byte for byte.
    stored = await streams.client.xrange(streams.key(live), min="0-4", max="0-5")
    assert [fields[b"f"] for _, fields in stored] == [frame(4)[1], frame(5)[1]]


async def test_forwarder_skips_events_already_in_redis(
    bridge: RedisEventBridge, streams: RedisRunStreams
) -> None:
    """The worker that created the run wrote its metadata event (id 1) to Redis; the
    executing worker's log starts with the same event: it is not written twice."""
    run_id = uuid.uuid4().hex
    metadata = {"run_id": run_id, "attempt": 1}
    assert await streams.publish(run_id, 1, "metadata", metadata) == 1
    event_log = RunEventLog()
    event_log.publish("metadata", metadata)
    publish_some(event_log, 20)
    event_log.close()
    assert await bridge.forward(run_id, event_log) is ForwardOutcome.ENDED
    assert await streams.client.xlen(streams.key(run_id)) == 22  # 21 events + the end
    assert await collect(streams.follow(run_id)) == b"".join(event_log.frames)


async def test_reaper_ending_a_run_while_its_owner_still_publishes(
    prefix: str, bridge: RedisEventBridge
) -> None:
    """The owner (believed dead) keeps writing while a reaper ends the run: the owner's
    writes after the end are refused; every follower sees one ordered stream."""
    for attempt in range(5):
        run_id = uuid.uuid4().hex
        event_log = RunEventLog()
        task = bridge.forward(run_id, event_log)
        reaper = RedisRunStreams(REDIS_URL, prefix=prefix)
        try:
            follower = asyncio.create_task(collect(reaper.follow(run_id, 0, heartbeat=0.1), 10))

            async def owner(event_log: RunEventLog, task: asyncio.Task[ForwardOutcome]) -> None:
                i = 0
                while not task.done():
                    publish_some(event_log, 20, start=i)
                    i += 20
                    await asyncio.sleep(0.0005)
                event_log.close()

            owning = asyncio.create_task(owner(event_log, task))
            await asyncio.sleep(0.02 + attempt * 0.01)
            assert await reaper.end(run_id, final_event=("error", {"error": "WorkerLost"}))
            assert await asyncio.wait_for(task, 5) is ForwardOutcome.REFUSED
            await owning
            seen = await follower
            stored = await collect(reaper.follow(run_id))
            assert seen == stored
            frames = frames_of(stored)
            count = len(frames)
            assert ids_of(frames) == list(range(1, count + 1))
            assert frames[:-1] == event_log.frames[: count - 1]
            assert frames[-1].startswith(b"event: error\n")
            assert len(event_log.frames) > count - 1  # the owner's late events were refused
        finally:
            await reaper.aclose()


async def test_a_fenced_owner_detaches_and_the_reaper_ends_the_stream(
    bridge: RedisEventBridge, streams: RedisRunStreams
) -> None:
    run_id = uuid.uuid4().hex
    event_log = RunEventLog()
    task = bridge.forward(run_id, event_log)
    publish_some(event_log, 10)
    bridge.detach(run_id)  # its lease ran out: the run is not this worker's to end
    event_log.close()
    assert await task is ForwardOutcome.DETACHED
    assert await streams.state(run_id) is StreamState.LIVE
    assert await streams.end(run_id, final_event=("error", {"error": "WorkerLost"}))
    frames = frames_of(await collect(streams.follow(run_id)))
    assert frames[:10] == event_log.frames
    assert frames[10] == b'event: error\ndata: {"error":"WorkerLost"}\nid: 11\n\n'


async def test_ttl_after_the_end(prefix: str) -> None:
    s = RedisRunStreams(REDIS_URL, prefix=prefix, ended_ttl=120, live_ttl=600)
    short = RedisRunStreams(REDIS_URL, prefix=prefix, ended_ttl=0.3, live_ttl=None)
    try:
        run_id = uuid.uuid4().hex
        await s.publish(run_id, 1, "values", {})
        assert 590_000 < await s.client.pttl(s.key(run_id)) <= 600_000
        await s.end(run_id)
        assert 110_000 < await s.client.pttl(s.key(run_id)) <= 120_000
        await s.end(run_id)  # ending again does not extend it
        await s.discard(run_id, ttl=5)  # a deleted run: shortened
        assert 0 < await s.client.pttl(s.key(run_id)) <= 5000

        gone = uuid.uuid4().hex
        await short.publish(gone, 1, "values", {})
        assert await short.client.pttl(short.key(gone)) == -1  # live, no safety TTL
        await short.end(gone)
        await asyncio.sleep(0.5)
        assert await short.state(gone) is StreamState.MISSING
        # A finished run whose stream expired: the caller says so, the follow ends at once.
        assert await collect(short.follow(gone, 0, wait_for_start=False), 1) == b""
    finally:
        await s.aclose()
        await short.aclose()


async def test_state_heartbeat_and_wait_ended(streams: RedisRunStreams) -> None:
    run_id = uuid.uuid4().hex
    assert await streams.state(run_id) is StreamState.MISSING
    assert not await streams.wait_ended(run_id, timeout=0.1)
    follower = streams.follow(run_id, 0, heartbeat=0.1)  # waits for the stream to start
    assert await asyncio.wait_for(anext(follower), 1) == HEARTBEAT
    await streams.publish(run_id, 1, "metadata", {"run_id": run_id, "attempt": 1})
    assert await streams.state(run_id) is StreamState.LIVE
    first = await asyncio.wait_for(anext(follower), 1)
    assert first == (b'event: metadata\ndata: {"run_id":"%s","attempt":1}\nid: 1\n\n'
                     % run_id.encode())
    waiter = asyncio.create_task(streams.wait_ended(run_id, timeout=5))
    await asyncio.sleep(0.05)
    await streams.publish(run_id, 2, "values", {})  # an event does not wake wait_ended
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await streams.end(run_id)
    assert await waiter
    assert frames_of(await collect(follower, 2)) == [b"event: values\ndata: {}\nid: 2\n\n"]


async def test_orphaned_stream_is_ended_by_a_follower(prefix: str) -> None:
    """The owner died after the run was recorded finished but before its end marker:
    a follower that can ask the store ends the stream, for every listener."""
    s = RedisRunStreams(REDIS_URL, prefix=prefix, orphan_grace=0.2, max_block=0.5)
    try:
        run_id = uuid.uuid4().hex
        for i in range(1, 4):
            await s.publish(run_id, i, "values", {"i": i})
        finished = False

        async def run_finished() -> bool:
            return finished

        plain = asyncio.create_task(collect(s.follow(run_id, 0, heartbeat=0.1), 5))
        checking = asyncio.create_task(
            collect(s.follow(run_id, 2, heartbeat=0.1, run_finished=run_finished), 5)
        )
        await asyncio.sleep(0.6)
        assert not plain.done() and not checking.done()  # live run: nobody ends it
        finished = True
        plain_out, checking_out = await asyncio.gather(plain, checking)
        assert plain_out.endswith(INCOMPLETE_FRAME) and checking_out.endswith(INCOMPLETE_FRAME)
        assert ids_of(frames_of(plain_out)[:-1]) == [1, 2, 3]
        filtered = await collect(s.follow(run_id, 0, frozenset({"values"})), 1)
        assert INCOMPLETE_FRAME not in filtered  # "error" not asked for
    finally:
        await s.aclose()


async def test_outage_the_run_continues_and_catches_up(prefix: str) -> None:
    """Redis unreachable mid-run: the graph never waits, the forwarder and a follower
    retry, and after the outage both catch up exactly."""
    proxy = TcpProxy(*redis_host_port())
    await proxy.start()
    b = RedisEventBridge(proxy.url, prefix=prefix, max_block=0.5, socket_timeout=1.0,
                         retry_max=0.2)
    direct = RedisRunStreams(REDIS_URL, prefix=prefix)
    try:
        run_id = uuid.uuid4().hex
        event_log = RunEventLog()
        task = b.forward(run_id, event_log)
        follower = asyncio.create_task(collect(b.follow(run_id, 0, heartbeat=0.1), 15))
        publish_some(event_log, 500)
        await wait_redis_has(direct, run_id, 500)
        await proxy.stop()
        started = time.monotonic()
        for i in range(500, 2000, 100):  # the graph goes on while Redis is unreachable
            publish_some(event_log, 100, start=i)
            await asyncio.sleep(0.05)
        assert time.monotonic() - started < 2
        assert await direct.last_event_id(run_id) == 500
        await proxy.start()
        event_log.close()
        assert await asyncio.wait_for(task, 10) is ForwardOutcome.ENDED
        whole = b"".join(event_log.frames)
        assert await follower == whole
        assert await collect(direct.follow(run_id)) == whole
    finally:
        await b.aclose()
        await direct.aclose()
        await proxy.stop()


async def test_outage_beyond_the_backlog_ends_with_an_error_event(prefix: str) -> None:
    proxy = TcpProxy(*redis_host_port())
    await proxy.start()
    b = RedisEventBridge(proxy.url, prefix=prefix, max_backlog=100, socket_timeout=1.0,
                         retry_max=0.1)
    direct = RedisRunStreams(REDIS_URL, prefix=prefix)
    try:
        run_id = uuid.uuid4().hex
        event_log = RunEventLog()
        task = b.forward(run_id, event_log)
        publish_some(event_log, 50)
        await wait_redis_has(direct, run_id, 50)
        await proxy.stop()
        publish_some(event_log, 300, start=50)
        await asyncio.sleep(0.3)
        await proxy.start()
        event_log.close()  # the run finishes and is recorded regardless
        assert await asyncio.wait_for(task, 10) is ForwardOutcome.LOST
        out = await collect(direct.follow(run_id))
        assert out == b"".join(event_log.frames[:50]) + INCOMPLETE_FRAME
        assert await direct.state(run_id) is StreamState.ENDED
        # The owner's local followers lose nothing.
        assert len(frames_of(await local_follow(event_log))) == 350
    finally:
        await b.aclose()
        await direct.aclose()
        await proxy.stop()


async def test_redis_down_the_run_still_finishes(caplog: pytest.LogCaptureFixture) -> None:
    b = RedisEventBridge("redis://127.0.0.1:1/0", prefix="unused", give_up_after=0.3,
                         retry_max=0.05, socket_timeout=0.5)
    try:
        event_log = RunEventLog()
        with caplog.at_level(logging.WARNING, logger="runlane.streams.redis"):
            task = b.forward("r1", event_log)
            publish_some(event_log, 100)
            event_log.close()
            assert await asyncio.wait_for(task, 10) is ForwardOutcome.LOST
        assert "cannot be replayed on other workers" in caplog.text
        assert len(frames_of(await local_follow(event_log))) == 100
        assert not await b.ping()
    finally:
        await b.aclose()


async def test_throughput_publish_to_follow(
    prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    total = 20_000
    b = RedisEventBridge(REDIS_URL, prefix=prefix)
    try:
        run_id = uuid.uuid4().hex
        event_log = RunEventLog()
        payload = {"messages": [{"type": "ai", "content": "token " * 8}], "step": 1}
        follower = asyncio.create_task(collect(b.follow(run_id, 0, heartbeat=1), 60))
        started = time.perf_counter()
        task = b.forward(run_id, event_log)
        for i in range(total):
            event_log.publish("messages", payload)
            if i % 500 == 0:
                await asyncio.sleep(0)  # a graph yields to the loop between steps
        published = time.perf_counter()
        event_log.close()
        assert await task is ForwardOutcome.ENDED
        forwarded = time.perf_counter()
        received = await follower
        done = time.perf_counter()
        assert len(frames_of(received)) == total
        with capsys.disabled():
            print(
                f"\n[redis streams] {total} events ({len(received) / 1e6:.1f} MB): "
                f"publish {total / (published - started):,.0f} ev/s (local), "
                f"into Redis {total / (forwarded - started):,.0f} ev/s, "
                f"publish->follow end-to-end {total / (done - started):,.0f} ev/s"
            )
    finally:
        await b.aclose()


# ------------------------------------------------- one blocking read per worker


async def test_hundreds_of_followers_share_one_blocking_read(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """300 runs followed live on one worker whose pools hold 4 connections each: the
    followers wait in the worker's one XREAD BLOCK, not one blocking read each (which
    needed a connection per waiting follower: past the pool, redis-py answered "Too
    many connections" and followers retried). Every follower gets exactly its run's
    frames, in order, mode filter applied; nothing is retried."""
    runs = [f"run-{i}" for i in range(300)]
    writer = RedisRunStreams(REDIS_URL, prefix=prefix)
    follower = RedisRunStreams(REDIS_URL, prefix=prefix, max_block=30.0,
                               max_connections=4, max_read_connections=4)
    try:
        logs = {run_id: RunEventLog() for run_id in runs}
        with caplog.at_level(logging.WARNING, logger="runlane.streams.redis"):
            wanted_modes = frozenset({"messages"})
            tasks = {run_id: asyncio.create_task(collect(follower.follow(
                run_id, 0, wanted_modes if i % 2 else None), timeout=60))
                for i, run_id in enumerate(runs)}
            await asyncio.sleep(0.3)  # every follower waits (no stream exists yet)
            for step in range(6):
                # Interleaved across runs, as tokens of concurrent runs arrive.
                for run_id in random.sample(runs, len(runs)):
                    event_log = logs[run_id]
                    publish_some(event_log, 1, start=step)
                    await writer.append(run_id, len(event_log.frames),
                                        [(event_log.names[-1], event_log.frames[-1])])
                await asyncio.sleep(0.01)
            for run_id in runs:
                logs[run_id].close()
                await writer.end(run_id)
            got = await asyncio.gather(*tasks.values())
        assert "Redis unreachable" not in caplog.text
        assert "Too many connections" not in caplog.text
        for i, (run_id, data) in enumerate(zip(runs, got, strict=True)):
            expected = await local_follow(logs[run_id], 0,
                                          frozenset({"messages"}) if i % 2 else None)
            assert data == expected, run_id
    finally:
        await follower.aclose()
        await writer.aclose()


async def test_a_new_follower_does_not_wait_for_the_read_in_flight(prefix: str) -> None:
    """The worker's blocking read is in flight on run A's stream (blocking up to 60 s)
    when a follower of run B subscribes: the read is interrupted and reissued with B's
    stream, so B's events arrive long before A's read would have timed out."""
    writer = RedisRunStreams(REDIS_URL, prefix=prefix)
    follower = RedisRunStreams(REDIS_URL, prefix=prefix, max_block=60.0)
    try:
        follow_a = asyncio.create_task(collect(follower.follow("run-a", 0), timeout=90))
        await asyncio.sleep(0.3)  # A's follower waits in the tail's read
        # B's follower finds no stream yet: it subscribes while A's read is in flight.
        follow_b = asyncio.create_task(collect(follower.follow("run-b", 0), timeout=20))
        await asyncio.sleep(0.3)
        await writer.publish("run-b", 1, "values", {"b": 1})
        await writer.end("run-b")
        # 20 s, far below the 60 s the read in flight blocks for: only an interrupted
        # read can have picked up B's stream by then.
        assert ids_of(frames_of(await follow_b)) == [1]
        await writer.publish("run-a", 1, "values", {"a": 1})
        await writer.end("run-a")
        assert ids_of(frames_of(await follow_a)) == [1]
    finally:
        await follower.aclose()
        await writer.aclose()


async def test_a_slow_follower_is_let_go_by_the_tail_and_reads_on_by_itself(
    prefix: str,
) -> None:
    """A follower that takes its frames slower than they come: once more than the
    tail's `max_pending` entries wait for it, the tail lets go of it (bounded memory
    per follower) and it reads on from Redis at its own pace, missing nothing."""
    writer = RedisRunStreams(REDIS_URL, prefix=prefix)
    follower = RedisRunStreams(REDIS_URL, prefix=prefix, max_block=5.0)
    follower.tail.max_pending = 5
    event_log = RunEventLog()
    try:
        async def slow() -> bytes:
            got = b""
            async for batch in follower.follow("run-slow", 0):
                if batch != HEARTBEAT:
                    got += batch
                    await asyncio.sleep(0.05)
            return got

        reading = asyncio.create_task(slow())
        await asyncio.sleep(0.3)  # subscribed to the tail
        for i in range(120):
            publish_some(event_log, 1, start=i)
            await writer.append("run-slow", len(event_log.frames),
                                [(event_log.names[-1], event_log.frames[-1])])
            if i % 10 == 0:
                await asyncio.sleep(0.01)
        event_log.close()
        await writer.end("run-slow")
        data = await asyncio.wait_for(reading, 60)
        assert data == await local_follow(event_log)
        assert not follower.tail._subs  # let go (and nothing left subscribed)
    finally:
        await follower.aclose()
        await writer.aclose()
