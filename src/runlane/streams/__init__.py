"""Run events: publish, replay from an event id, live tail.

- local.py   per-run event logs in this process (ring buffers), SSE framing
- redis.py   Redis Streams, so any worker can serve any run's stream (scale-out)
"""
