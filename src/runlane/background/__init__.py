"""Timers that act through the service: one of each per worker.

- cron_scheduler.py   fires due crons (a compare-and-set claim makes each firing once)
- ttl_sweeper.py      applies expired threads' TTL
- webhooks.py         POSTs finished runs to their webhook, with retries
"""
