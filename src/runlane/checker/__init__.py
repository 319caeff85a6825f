"""`runlane check URL`: drive any LangGraph-compatible server through randomized,
concurrent cancel / double-texting / streaming scenarios, record every request and
answer, and check the run contract's invariants on what was recorded.

- history.py     the record: every exchange with monotonic timestamps, runs, claims
- scenarios.py   the randomized scenarios (they act; they do not judge)
- invariants.py  the checks, pure functions of a History
- chaos.py       SIGKILL and restart worker processes during the trials
- report.py      rich output and the JSON dump
- runner.py      preflight, scheduling, final sweep
- options.py     the `check` subcommand's arguments
"""
