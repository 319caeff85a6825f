"""GET /metrics: the Prometheus series of each worker, after real runs, cancels and
streams (one SQLite process, and the 3-worker PostgreSQL cluster: every worker is
scraped and per-process series are summed, as a Prometheus query would)."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import ServerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
LONG = {"steps": 100_000, "delay": 0.02}


def scrape_one(url: str) -> Samples:
    resp = httpx.get(f"{url}/metrics", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(server: ServerProcess) -> Samples:
    """Every worker's samples, summed (store-wide gauges are taken from one)."""
    total: Samples = defaultdict(float)
    for url in getattr(server, "urls", [server.url]):
        for key, value in scrape_one(url).items():
            total[key] += value
    return total


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and wanted <= ls]
    return sum(found)


def has(samples: Samples, name: str) -> bool:
    return any(n == name for n, _ in samples)


def wait_status(http: httpx.Client, thread_id: str, run_id: str, statuses: set[str]) -> dict:
    deadline = time.monotonic() + 30
    while True:
        run = http.get(f"/threads/{thread_id}/runs/{run_id}").json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} stayed {run['status']}"
        time.sleep(0.05)


def test_metrics_after_runs_cancels_and_streams(server: ServerProcess, http: httpx.Client):
    before = scrape(server)
    thread = http.post("/threads", json={}).json()["thread_id"]
    # A run that succeeds.
    done = http.post(f"/threads/{thread}/runs", json={"assistant_id": "echo",
                                                       "input": {"text": "x"}}).json()
    assert http.get(f"/threads/{thread}/runs/{done['run_id']}/join").status_code == 200
    # A long run, cancelled with wait: 200; again: 202; bad action: 422.
    long = http.post(f"/threads/{thread}/runs",
                     json={"assistant_id": "sleepy", "input": LONG}).json()
    wait_status(http, thread, long["run_id"], {"running"})
    cancel = f"/threads/{thread}/runs/{long['run_id']}/cancel"
    assert http.post(cancel, params={"wait": "1"}).status_code == 200
    assert http.post(cancel).status_code == 202
    assert http.post(cancel, params={"action": "bogus"}).status_code == 422
    # Too late (409) and unknown (404).
    late = f"/threads/{thread}/runs/{done['run_id']}/cancel"
    assert http.post(late).status_code == 409
    assert http.post(f"/threads/{thread}/runs/{uuid.uuid4()}/cancel").status_code == 404

    # An open SSE stream is counted by the worker serving it.
    streamed = http.post(f"/threads/{thread}/runs",
                         json={"assistant_id": "sleepy", "input": LONG}).json()
    wait_status(http, thread, streamed["run_id"], {"running"})
    url = server.url
    with httpx.Client(base_url=url, timeout=30) as direct:
        path = f"/threads/{thread}/runs/{streamed['run_id']}/stream"
        with direct.stream("GET", path) as stream:
            chunks = stream.iter_bytes()  # kept: a discarded iterator closes the stream
            next(chunks)  # the stream is being served
            during = scrape_one(url)
            assert value(during, "runlane_sse_streams") >= 1
            assert value(during, "runlane_runs", status="running") >= 1
            assert http.post(f"/threads/{thread}/runs/{streamed['run_id']}/cancel",
                             params={"wait": "1"}).status_code == 200
            for _ in chunks:  # the run ended: so does its stream
                pass
        deadline = time.monotonic() + 10
        while value(scrape_one(url), "runlane_sse_streams") >= value(during,
                                                                     "runlane_sse_streams"):
            assert time.monotonic() < deadline, "the closed stream is still counted"
            time.sleep(0.1)

    after = scrape(server)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Cancel answers, by code and contract outcome.
    assert grew("runlane_cancel_requests_total", answer="200", outcome="recorded") >= 2
    assert grew("runlane_cancel_requests_total", answer="202",
                outcome="already_interrupted") >= 1
    assert grew("runlane_cancel_requests_total", answer="422", outcome="invalid_request") >= 1
    assert grew("runlane_cancel_requests_total", answer="409", outcome="too_late") >= 1
    assert grew("runlane_cancel_requests_total", answer="404", outcome="not_found") >= 1
    # Durations and waits of the runs executed (wherever they executed).
    assert grew("runlane_run_duration_seconds_count", status="success") >= 1
    assert grew("runlane_run_duration_seconds_count", status="interrupted") >= 2
    assert grew("runlane_run_duration_seconds_sum", status="interrupted") > 0
    assert grew("runlane_queue_wait_seconds_count") >= 3
    assert grew("runlane_cancel_to_stop_seconds_count") >= 2
    assert 0 <= grew("runlane_cancel_to_stop_seconds_sum") < 60
    # Every confirmed transition is counted, by status and cause.
    assert grew("runlane_run_transitions_total", status="pending", cause="created") >= 3
    assert grew("runlane_run_transitions_total", status="running", cause="claimed") >= 3
    assert grew("runlane_run_transitions_total", status="success", cause="completed") >= 1
    assert grew("runlane_run_transitions_total", status="interrupted", cause="cancelled") >= 2
    # Store-wide gauges, lease counters, store errors, which worker answered.
    one = scrape_one(server.url)
    for status in ("pending", "running"):
        assert ("runlane_runs", frozenset({("status", status)})) in one
    assert value(one, "runlane_queue_depth") == value(one, "runlane_runs", status="pending")
    assert value(one, "runlane_queue_depth") >= 0
    assert has(one, "runlane_lease_renewals_total") and has(one, "runlane_lease_takeovers_total")
    if getattr(server, "urls", None):
        # Each worker renews every lease_seconds / 3, whatever it runs: on a cluster
        # started moments ago the first renewal may still be due.
        deadline = time.monotonic() + 15
        while value(scrape(server), "runlane_lease_renewals_total") == 0:
            assert time.monotonic() < deadline, "no lease renewal counted in 15 s"
            time.sleep(0.2)
        assert value(one, "runlane_worker_info", backend="postgresql") == 1
    else:
        assert value(one, "runlane_lease_renewals_total") == 0
        assert value(one, "runlane_worker_info", backend="sqlite") == 1
    assert value(one, "runlane_store_errors_total", error="DatabaseUnavailable") >= 0
    assert has(one, "runlane_store_errors_total")
    assert has(one, "process_resident_memory_bytes")
