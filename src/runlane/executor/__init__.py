"""Running graphs on this worker.

- runner.py   claims runs into free slots (or starts them at admission), runs each
              graph as an asyncio task, delivers cancels, and settles each run
              through the store's compare-and-set (it proposes; the store decides)
- leases.py   scale-out: lease renewal, fencing, reaping dead workers' runs
- bus.py      scale-out: cross-worker signals over PostgreSQL LISTEN/NOTIFY
"""
