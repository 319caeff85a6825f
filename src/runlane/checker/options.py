"""The arguments of `runlane check` (kept here so cli.py stays small)."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Check a LangGraph-compatible server against the run contract: randomized concurrent
cancel, double-texting, join and stream-rejoin scenarios; every request and answer
is recorded, then the contract's invariants are checked on the record.

The server must serve a graph shaped like runlane's demo `sleepy` (--graph): input
{"steps": n, "delay": s}, n ticks of s seconds, one custom stream event {"tick": k}
per tick (examples/demo/langgraph.json serves it). If it also serves the test
suite's `timed` graph, its spans check that runs of a thread never overlap.

Exit status: 0 no violation, 1 violations, 2 usage or connection error (or the
checker itself failed).
"""


EPILOG = """\
examples:
  runlane check http://127.0.0.1:2024 --duration 60
  runlane check http://127.0.0.1:8000 http://127.0.0.1:8001 --trials 200 --json check.json

  # chaos: worker i listens on port 8000+i; the restart command starts it again in the
  # foreground (exec: its pid is the new worker's), {index} is its position in --pids
  runlane check http://127.0.0.1:8000 http://127.0.0.1:8001 --duration 120 \\
      --chaos --pids 4242,4243 --restart-cmd \\
      'exec runlane serve --port $((8000+{index})) --database-url postgresql://... --redis-url redis://...'

  # more faults: SIGSTOP past the lease, a PostgreSQL restart; webhooks checked too
  runlane check ... --chaos --pids ... --restart-cmd ... --faults kill,stop,pg \\
      --stop-seconds 12 --fault-cmd 'pg=pg_ctl -D /srv/pg restart -m fast' --webhooks

  # all of it on private PostgreSQL and Redis, 3 workers, 10 minutes: make soak
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("url", nargs="+",
                        help="the server, e.g. http://127.0.0.1:2024; several URLs (the "
                             "workers of one deployment): requests go to each in turn")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds to start new scenarios for (default 30)")
    parser.add_argument("--trials", type=int, default=None,
                        help="run exactly N scenarios instead of --duration")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="scenarios running at once (default 4)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for the scenarios' choices (default: random, printed)")
    parser.add_argument("--graph", default="sleepy",
                        help="graph id with input {steps, delay} (default sleepy)")
    parser.add_argument("--timed-graph", default="timed",
                        help="graph id of the span-recording `timed` graph, used if served "
                             "(default timed; '' to skip)")
    parser.add_argument("--agent-graph", default="react_agent",
                        help="graph id of a react_agent-shaped graph (examples/agents: "
                             "context {reply_tokens, token_delay}) for the agent_stream "
                             "scenario, used if served (default react_agent; '' to skip)")
    parser.add_argument("--scenarios", default=None,
                        help="comma-separated subset of scenarios (default: all)")
    parser.add_argument("--stuck-after", type=float, default=30.0,
                        help="seconds a run may take to become terminal after a cancel or its "
                             "natural end before it counts as stuck (default 30)")
    parser.add_argument("--json", type=Path, default=None, dest="json_path",
                        help="write the whole history, results and violations to this file")
    parser.add_argument("--max-shown", type=int, default=3,
                        help="violations printed in full per invariant (default 3)")
    parser.add_argument("--header", action="append", default=[],
                        help="extra request header 'Name: value' (e.g. x-api-key), repeatable")
    from runlane import credentials

    credentials.add_arguments(parser)  # --api-key / --token (RUNLANE_API_KEY / RUNLANE_TOKEN)
    parser.add_argument("--cleanup", action="store_true",
                        help="delete the threads the check created, at the end")
    hooks = parser.add_argument_group(
        "webhooks", "a receiver in the checker; a share of the runs carry a webhook to it")
    hooks.add_argument("--webhooks", action="store_true",
                       help="start the receiver and check every run that ended was delivered "
                            "(the server's webhook policy must accept the receiver's URL)")
    hooks.add_argument("--webhook-listen", default="127.0.0.1:0",
                       help="HOST:PORT the receiver listens on (default 127.0.0.1, any port)")
    hooks.add_argument("--webhook-url", default=None,
                       help="the receiver's base URL as the server reaches it (default: "
                            "http://HOST:PORT/hook of --webhook-listen)")
    hooks.add_argument("--webhook-share", type=float, default=0.5,
                       help="share of the runs created with a webhook (default 0.5)")
    hooks.add_argument("--webhook-wait", type=float, default=90.0,
                       help="seconds to wait at the end for deliveries still owed (default 90)")
    chaos = parser.add_argument_group(
        "chaos", "faults on this host during the trials: kill (SIGKILL) and restart "
                 "workers, SIGSTOP them past their lease, run fault commands")
    chaos.add_argument("--chaos", action="store_true", help="enable chaos")
    chaos.add_argument("--pids", default=None,
                       help="comma-separated worker pids; a worker's index is its position")
    chaos.add_argument("--restart-cmd", default=None,
                       help="shell command that starts a replacement worker, in the foreground "
                            "(use exec); placeholders {index} {pid} {n}")
    chaos.add_argument("--faults", default="kill",
                       help="comma-separated faults to draw from: kill, stop, and the NAMEs "
                            "of --fault-cmd (default kill)")
    chaos.add_argument("--fault-cmd", action="append", default=[],
                       help="NAME=COMMAND: a fault that runs a shell command to its end, "
                            "e.g. 'pg=pg_ctl -D /data restart -m fast' (repeatable)")
    chaos.add_argument("--stop-seconds", type=float, default=10.0,
                       help="how long `stop` keeps a worker SIGSTOPped; make it longer than "
                            "the server's lease + grace (default 10)")
    chaos.add_argument("--chaos-interval", type=float, default=5.0,
                       help="mean seconds between faults (default 5)")
    chaos.add_argument("--restart-timeout", type=float, default=60.0,
                       help="seconds to wait for GET /ok after a restart (default 60)")
    chaos.add_argument("--chaos-log", type=Path, default=Path("runlane-check-chaos.log"),
                       help="where restarted workers' output goes")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from runlane.checker.runner import main

    return main(args)
