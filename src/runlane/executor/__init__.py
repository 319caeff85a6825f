"""Running graphs on this worker.

- executor.py     `Executor`, what the service talks to: builds the parts below
- dispatch.py     fills free slots: claims startable runs when woken (or starts a run
                  at its admission), wakes for delayed runs when due, rechecks
                  periodically in case a wake-up was lost
- supervision.py  each run's supervisor: delivers cancels, waits for the graph, and
                  settles the run through the store's compare-and-set (it proposes;
                  the store decides); completes recorded rollbacks, for every caller
- execution.py    runs one graph (astream / astream_events) and publishes its events
- leases.py       scale-out: lease renewal, fencing, reaping dead workers' runs
- bus.py          scale-out: cross-worker signals over PostgreSQL LISTEN/NOTIFY
"""
