"""Prometheus metrics of one worker process, served at `GET /metrics`.

Every series is defined here; the layers that know a fact report it through the
small functions below (the store's database layer: errors; the service: cancel
answers; the executor: queue wait, run duration, cancel-to-stop; the API: open
streams; the webhook sender: attempts; `logs.run_status`: status transitions), so no
other module touches prometheus_client.

Runs by status is two things, on purpose:

- `runlane_runs{status}`: a gauge of the *active* runs (pending, running) read from
  the store when /metrics is scraped. The store is the truth and is shared by all
  workers, so this is the deployment's queue as it is now, after restarts too, and
  the query is an index range on (status, seq), cheap however long history grows.
  `runlane_queue_depth` is its pending count.
- `runlane_run_transitions_total{status, cause}`: a counter of the transitions this
  process confirmed (after the store's compare-and-set returned a row). Terminal
  statuses only grow, so a gauge of them would be a full count of history on every
  scrape; a counter gives rates (`rate(...[5m])`) for free and resets with the
  process, as Prometheus counters may.

Several workers: each process has its own registry and answers for itself (plus
the store-wide gauges, identical on every worker: aggregate those with `max`, the
rest with `sum`). `runlane_worker_info{worker_id}` tells which worker answered.
With `--workers N` the processes share one port, so a scrape reaches one of them
at random; for complete per-worker series run one process per port or container
(each host or container a scrape target), the usual Prometheus model.
prometheus_client's multiprocess mode was considered and not used: it needs a
per-host directory wiped at every start, keeps a crashed worker's gauge files
(uvicorn restarts workers without a hook to mark them dead), cannot aggregate
collectors computed on scrape (leases), and does nothing across hosts, which is
where scale-out deployments are.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("runlane.metrics")

disable_created_metrics()  # `_created` series double every counter for little use
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Seconds: agent runs last from milliseconds to many minutes.
_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_STOP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

WORKER_INFO = Gauge("runlane_worker_info", "The worker process answering this scrape (always 1)",
                    ["worker_id", "backend"], registry=REGISTRY)
RUNS = Gauge("runlane_runs", "Active runs in the store by status, read on scrape "
             "(the whole deployment: identical on every worker)", ["status"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("runlane_queue_depth", "Pending runs in the store, read on scrape "
                    "(the whole deployment)", registry=REGISTRY)
RUN_TRANSITIONS = Counter("runlane_run_transitions", "Run status changes this worker "
                          "confirmed, by new status and cause", ["status", "cause"],
                          registry=REGISTRY)
RUN_DURATION = Histogram("runlane_run_duration_seconds", "Started to terminal commit, for "
                         "runs this worker executed, by final status", ["status"],
                         buckets=_RUN_BUCKETS, registry=REGISTRY)
QUEUE_WAIT = Histogram("runlane_queue_wait_seconds", "Created to started, for runs this "
                       "worker claimed", buckets=_WAIT_BUCKETS, registry=REGISTRY)
CANCELS = Counter("runlane_cancel_requests", "Cancel requests of one run by answer (the HTTP "
                  "code of the contract's table), contract outcome and who asked",
                  ["answer", "outcome", "reason"], registry=REGISTRY)
CANCEL_TO_STOP = Histogram("runlane_cancel_to_stop_seconds", "From a cancel reaching the "
                           "worker executing the run (at once after its commit on that "
                           "worker, by NOTIFY from others) to the run's terminal commit",
                           buckets=_STOP_BUCKETS, registry=REGISTRY)
SSE_STREAMS = Gauge("runlane_sse_streams", "Server-sent event streams this worker is serving",
                    registry=REGISTRY)
STORE_ERRORS = Counter("runlane_store_errors", "Store transactions that failed: "
                       "DatabaseUnavailable or an unexpected database exception",
                       ["error"], registry=REGISTRY)
STORE_ERRORS.labels("DatabaseUnavailable")  # the series exists before the first outage
WEBHOOK_ATTEMPTS = Counter("runlane_webhook_attempts", "Webhook POSTs this worker made, by "
                           "outcome: delivered, retry (failed, tried again later), failed "
                           "(given up)", ["outcome"], registry=REGISTRY)
CRON_CLAIMS = Counter("runlane_cron_claims", "Due cron firings this worker tried to claim: "
                      "won (it created the run) or lost (another worker claimed it first)",
                      ["result"], registry=REGISTRY)
for _result in ("won", "lost"):
    CRON_CLAIMS.labels(_result)
THREAD_STREAM_READS = Counter("runlane_thread_stream_reads", "Store reads thread streams "
                              "made for their thread's next run, by why: start (the stream "
                              "opened or a run ended), notified (a run was admitted on the "
                              "thread, or it was deleted), poll (the slow fallback)",
                              ["cause"], registry=REGISTRY)
for _cause in ("start", "notified", "poll"):
    THREAD_STREAM_READS.labels(_cause)
ABANDONED_NODES = Counter("runlane_abandoned_nodes", "Runs this worker ended while a node "
                          "of theirs still executed in a thread, by how the wait for it "
                          "ended: returned (within RUNLANE_ABANDONED_NODE_GRACE, the run's "
                          "thread held meanwhile) or grace_expired (the thread released, "
                          "the node still executing, its writes dropped)",
                          ["outcome"], registry=REGISTRY)
for _outcome in ("returned", "grace_expired"):
    ABANDONED_NODES.labels(_outcome)


class _LeaseCollector(Collector):
    """LeaseKeeper's own counters, read on scrape (0 on one SQLite process)."""

    def __init__(self) -> None:
        self.keeper: Any = None

    def collect(self) -> Any:
        renewals = CounterMetricFamily(
            "runlane_lease_renewals", "Lease renewals of this worker (one statement renews "
            "all its runs)")
        takeovers = CounterMetricFamily(
            "runlane_lease_takeovers", "Runs of dead workers this worker finished or adopted")
        renewals.add_metric([], getattr(self.keeper, "renewals", 0))
        takeovers.add_metric([], getattr(self.keeper, "takeovers", 0))
        yield renewals
        yield takeovers


_LEASES = _LeaseCollector()
REGISTRY.register(_LEASES)


# ------------------------------------------------------------------ reporting


def worker_started(worker_id: str, backend: str, lease_keeper: Any = None) -> None:
    WORKER_INFO.clear()
    WORKER_INFO.labels(worker_id, backend).set(1)
    _LEASES.keeper = lease_keeper


def run_transition(status: str, cause: str) -> None:
    RUN_TRANSITIONS.labels(status, cause).inc()


def run_claimed(wait_seconds: float) -> None:
    QUEUE_WAIT.observe(max(wait_seconds, 0.0))


def run_finished(status: str, duration_seconds: float | None,
                 cancel_to_stop_seconds: float | None) -> None:
    if duration_seconds is not None:
        RUN_DURATION.labels(status).observe(max(duration_seconds, 0.0))
    if cancel_to_stop_seconds is not None:
        CANCEL_TO_STOP.observe(max(cancel_to_stop_seconds, 0.0))


def cancel_answered(answer: int, outcome: str, reason: str) -> None:
    CANCELS.labels(str(answer), outcome, reason).inc()


def webhook_attempted(outcome: str) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()


def store_error(error: str) -> None:
    STORE_ERRORS.labels(error).inc()


def cron_claim(won: bool) -> None:
    CRON_CLAIMS.labels("won" if won else "lost").inc()


def thread_stream_read(cause: str) -> None:
    THREAD_STREAM_READS.labels(cause).inc()


def node_abandoned(returned: bool) -> None:
    ABANDONED_NODES.labels("returned" if returned else "grace_expired").inc()


async def render(store: Any, timeout: float = 2.0) -> tuple[bytes, str]:
    """The exposition text: store-wide gauges refreshed first. An unreachable store
    keeps the last values (and is counted in runlane_store_errors_total)."""
    try:
        counts = await asyncio.wait_for(store.count_active_runs(), timeout)
    except Exception as exc:  # noqa: BLE001 - the scrape answers with what it has
        log.warning("metrics: reading run counts from the store failed (%s)", exc)
    else:
        for status in ("pending", "running"):
            RUNS.labels(status).set(counts.get(status, 0))
        QUEUE_DEPTH.set(counts.get("pending", 0))
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
