"""Preflight, scheduling of the scenarios, chaos, then the checks and the report."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sys
import traceback
from typing import Any

import httpx
from rich.console import Console

from runlane.checker.chaos import Chaos, FaultFn, parse_fault_cmds, parse_pids
from runlane.checker.history import TERMINAL, Clock, History, Recorder
from runlane.checker.invariants import Violation, check_all
from runlane.checker.report import dump_json, print_report, summarize
from runlane.checker.scenarios import SCENARIOS, Abort, Context, Session, pick
from runlane.checker.webhooks import Receiver


class UsageError(Exception):
    """`runlane check` cannot start as asked (printed, exit 2): the checker's own
    control flow, client-side, so not in runlane.errors' tree."""


@dataclasses.dataclass
class Outcome:
    """A finished check: its exit status and everything it found (for harnesses that
    run it in-process, such as the soak)."""

    code: int
    history: History
    violations: list[Violation]
    summary: dict[str, Any]
    internal_errors: list[str]


def _headers(args: argparse.Namespace) -> dict[str, str]:
    """--header, --api-key and --token (or RUNLANE_API_KEY / RUNLANE_TOKEN)."""
    from runlane import credentials
    from runlane.errors import CredentialError

    try:
        return credentials.headers_from(args)
    except CredentialError as exc:
        raise UsageError(str(exc)) from None


def main(args: argparse.Namespace) -> int:
    console = Console() if sys.stdout.isatty() else Console(width=200)
    err = Console(stderr=True)
    try:
        return asyncio.run(check(args, console, err))
    except UsageError as exc:
        err.print(f"[bold red]runlane check:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err.print("[bold red]runlane check: interrupted[/]")
        return 2


async def preflight(client: httpx.AsyncClient, urls: list[str], graph: str,
                    optional: list[str | None]) -> list[str | None]:
    """Every URL reachable, `graph` served; which of the `optional` graphs are served
    too (None for those that are not)."""
    for url in urls:
        try:
            ok = await client.get(f"{url}/ok", timeout=10)
        except httpx.HTTPError as exc:
            raise UsageError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
        if ok.status_code != 200:
            raise UsageError(f"{url}/ok answered {ok.status_code}: is this a "
                             "LangGraph-compatible server?")

    async def served(graph_id: str) -> bool:
        resp = await client.post(f"{urls[0]}/assistants/search",
                                 json={"graph_id": graph_id, "limit": 1}, timeout=10)
        return resp.status_code == 200 and isinstance(resp.json(), list) and bool(resp.json())

    try:
        if not await served(graph):
            raise UsageError(
                f"the server does not serve a graph {graph!r}: serve a graph with input "
                "{steps, delay} (e.g. examples/demo/langgraph.json's sleepy) or pass --graph")
        return [g if g and await served(g) else None for g in optional]
    except httpx.HTTPError as exc:
        raise UsageError(f"assistants search failed: {type(exc).__name__}: {exc}") from None


def _scenario_names(args: argparse.Namespace) -> list[str]:
    names = list(SCENARIOS)
    if args.scenarios:
        names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown or not names:
            raise UsageError(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    if args.concurrency < 1 or (args.trials is not None and args.trials < 1) \
            or args.duration <= 0:
        raise UsageError("--concurrency, --trials and --duration must be positive")
    return names


def _chaos_setup(args: argparse.Namespace,
                 custom: dict[str, FaultFn] | None) -> tuple[list[int], dict[str, FaultFn],
                                                             list[str]]:
    if not args.chaos:
        return [], {}, []
    if not args.pids or not args.restart_cmd:
        raise UsageError("--chaos needs --pids and --restart-cmd (see runlane check --help)")
    try:
        pids = parse_pids(args.pids)
        faults = {**parse_fault_cmds(args.fault_cmd, args.chaos_log), **(custom or {})}
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in ("kill", "stop") and k not in faults]
    if unknown or not kinds:
        raise UsageError(f"--faults: unknown fault(s) {unknown}; known: kill, stop"
                         f"{''.join(', ' + k for k in faults)}")
    return pids, faults, kinds


def _drop(names: list[str], name: str, served: str | None, why: str) -> None:
    if not served and name in names:
        names.remove(name)
        if not names:
            raise UsageError(f"{name} needs {why}, which is not served")


async def check(args: argparse.Namespace, console: Console, err: Console) -> int:
    outcome = await execute(args, console, err)
    return outcome.code


# Over the complexity ceiling: each option checked, then the whole check run.
async def execute(args: argparse.Namespace, console: Console, err: Console,  # noqa: C901
                  custom_faults: dict[str, FaultFn] | None = None) -> Outcome:
    """The whole check. `custom_faults`: chaos faults a harness provides as coroutines
    (named in --faults), beside kill, stop and --fault-cmd."""
    names = _scenario_names(args)
    pids, faults, kinds = _chaos_setup(args, custom_faults)
    headers = _headers(args)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    urls = [u.rstrip("/") for u in args.url]
    url = urls[0]
    stuck_after = args.stuck_after + (args.restart_timeout if args.chaos else 0.0)
    settings: dict[str, Any] = {
        "url": urls if len(urls) > 1 else url, "seed": seed, "graph": args.graph,
        "duration": args.duration,
        "trials": args.trials, "concurrency": args.concurrency, "scenarios": names,
        "stuck_after": stuck_after, "chaos": bool(args.chaos), "pids": pids,
        "restart_cmd": args.restart_cmd, "faults": kinds,
    }
    history = History(settings)
    clock = Clock()
    receiver = None
    if args.webhooks:
        host, _, port = args.webhook_listen.rpartition(":")
        try:
            receiver = Receiver(clock, host or "127.0.0.1", int(port or 0)).start()
        except (OSError, ValueError) as exc:
            raise UsageError(f"--webhook-listen {args.webhook_listen}: {exc}") from None
        settings["webhook_url"] = (args.webhook_url or receiver.url).rstrip("/")
    # Idle connections are closed well before a server's keep-alive timeout (uvicorn: 5s),
    # so a request never races the server closing the connection it reuses.
    limits = httpx.Limits(max_connections=args.concurrency * 16 + 32,
                          max_keepalive_connections=args.concurrency * 8 + 8,
                          keepalive_expiry=1.0)
    internal_errors: list[str] = []
    chaos = None
    try:
        async with httpx.AsyncClient(headers=headers, limits=limits,
                                     timeout=stuck_after + 10) as client:
            timed, agent = await preflight(client, urls, args.graph,
                                           [args.timed_graph or None, args.agent_graph or None])
            _drop(names, "timed_order", timed, "the `timed` graph")
            _drop(names, "agent_stream", agent, "a react_agent-shaped graph (--agent-graph)")
            settings.update(timed_graph=timed, agent_graph=agent, scenarios=names)
            plan = (f"{args.trials} scenarios" if args.trials is not None
                    else f"{args.duration:g}s")
            err.print(f"runlane check {' '.join(urls)}: {plan}, "
                      f"concurrency {args.concurrency}, seed {seed}, "
                      f"graph {args.graph}{', timed ' + timed if timed else ''}"
                      f"{', agent ' + agent if agent else ''}"
                      f"{', webhooks' if receiver else ''}"
                      f"{', chaos ' + '/'.join(kinds) + ' on pids ' + str(pids) if pids else ''}",
                      highlight=False)
            recorder = Recorder(client, history, clock, timeout=stuck_after + 10, urls=urls)
            ctx = Context(recorder=recorder, history=history, graph=args.graph, seed=seed,
                          stuck_after=stuck_after, timed_graph=timed, agent_graph=agent,
                          webhook_url=settings.get("webhook_url"),
                          webhook_share=args.webhook_share)
            if args.chaos:
                chaos = Chaos(pids=pids, restart_cmd=args.restart_cmd, urls=urls,
                              history=history, clock=clock,
                              rng=random.Random(f"{seed}:chaos"), interval=args.chaos_interval,
                              restart_timeout=args.restart_timeout, log_path=args.chaos_log,
                              headers=headers, faults=kinds, stop_seconds=args.stop_seconds,
                              custom=faults)
            await _trials(args, ctx, names, chaos, err, internal_errors)
            if receiver is not None:
                await _await_webhooks(history, receiver, args.webhook_wait, err)
            if chaos is not None:
                settings["restarted_pids"] = chaos.new_pids()
            if args.cleanup:
                for thread_id in {r.thread_id for r in history.runs.values()}:
                    try:
                        await client.delete(f"{url}/threads/{thread_id}")
                    except httpx.HTTPError:
                        pass
    finally:
        if chaos is not None:
            chaos.resume_all()
        if receiver is not None:
            history.webhooks = receiver.snapshot()
            receiver.close()

    violations = check_all(history)
    summary = summarize(history, violations, internal_errors)
    summary["seed"] = seed
    summary["elapsed"] = clock()
    if chaos is not None:
        summary["restarted_pids"] = chaos.new_pids()
    print_report(console, history, violations, summary, internal_errors, args.max_shown)
    if args.json_path:
        dump_json(args.json_path, history, violations, summary, internal_errors)
        err.print(f"history and results written to {args.json_path}", highlight=False)
    code = 0
    if violations:
        code = 1
    elif internal_errors:
        err.print("[bold yellow]runlane check: the checker itself failed; the check is "
                  "inconclusive[/]")
        code = 2
    return Outcome(code, history, violations, summary, internal_errors)


async def _trials(args: argparse.Namespace, ctx: Context, names: list[str],
                  chaos: Chaos | None, err: Console, internal_errors: list[str]) -> None:
    """Run the scenarios `--concurrency` at a time until --trials or --duration; chaos
    injects faults until the duration is over (not while the last scenarios settle)."""
    history, clock = ctx.history, ctx.recorder.clock
    deadline = clock() + args.duration

    async def progress(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 5)
            except TimeoutError:
                faults = sum(1 for e in history.chaos_events if e["action"] == "window")
                err.print(f"  {clock():6.1f}s: {len(history.scenarios)} scenarios, "
                          f"{len(history.exchanges)} requests"
                          f"{f', {faults} faults' if chaos else ''}", highlight=False)

    async def end_of_faults(stop: asyncio.Event) -> None:
        if args.trials is None:
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, deadline - clock()))
            except TimeoutError:
                pass
            stop_faults.set()

    stop = asyncio.Event()
    stop_faults = asyncio.Event()
    side = [asyncio.ensure_future(progress(stop)), asyncio.ensure_future(end_of_faults(stop))]
    if chaos is not None:
        side.append(asyncio.ensure_future(chaos.run(stop_faults)))
    counter = _Counter(args.trials, deadline)
    chooser = random.Random(ctx.seed)  # one for all loops: a seed gives one sequence
    try:
        await asyncio.gather(*(_scenarios(ctx, names, counter, chooser, internal_errors)
                               for _ in range(args.concurrency)))
    finally:
        stop.set()
        stop_faults.set()
        await asyncio.gather(*side, return_exceptions=True)


@dataclasses.dataclass
class _Counter:
    """How many scenarios have started, and when to stop starting them."""

    trials: int | None
    deadline: float
    started: int = 0

    def next(self, now: float) -> int | None:
        if (self.started >= self.trials) if self.trials is not None else now >= self.deadline:
            return None
        self.started += 1
        return self.started - 1


async def _scenarios(ctx: Context, names: list[str], counter: _Counter,
                     chooser: random.Random, internal_errors: list[str]) -> None:
    """One of the --concurrency loops: scenario after scenario until the counter says."""
    history, clock = ctx.history, ctx.recorder.clock
    while (index := counter.next(clock())) is not None:
        name = pick(chooser, names)
        session = Session(ctx, name, index)
        entry: dict[str, Any] = {"id": session.id, "name": name, "t_start": clock()}
        history.scenarios.append(entry)
        fn = SCENARIOS[name][0]
        try:
            await asyncio.wait_for(fn(session), ctx.stuck_after * 3 + 60)
        except Abort as exc:
            entry["aborted"] = str(exc)
        except TimeoutError:
            entry["aborted"] = "the scenario did not finish in time"
        except Exception:  # noqa: BLE001 - a bug in the checker, not in the server
            entry["aborted"] = "checker error"
            internal_errors.append(f"{session.id}: {traceback.format_exc()}")
        try:
            await session.finish()
        except Exception:  # noqa: BLE001
            internal_errors.append(f"{session.id} finish: {traceback.format_exc()}")
        entry["t_end"] = clock()
        if entry.get("aborted"):
            await asyncio.sleep(0.5)  # the server may be down (chaos): do not spin


async def _await_webhooks(history: History, receiver: Receiver, bound: float,
                          err: Console) -> None:
    """Wait (at most `bound` seconds) until every run that ended with a webhook has had
    one delivery: a delivery follows the run's end, retried after a failure."""
    owed = {r.run_id for r in history.runs.values()
            if r.webhook is not None and r.final_status in TERMINAL}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while owed - receiver.delivered() and loop.time() < deadline:
        receiver.arrived.clear()
        if not owed - receiver.delivered():
            break
        try:
            await asyncio.wait_for(receiver.arrived.wait(), deadline - loop.time())
        except TimeoutError:
            break
    missing = owed - receiver.delivered()
    err.print(f"webhooks: {len(owed) - len(missing)} of {len(owed)} runs delivered"
              f"{f' ({len(missing)} missing after {bound:g}s)' if missing else ''}",
              highlight=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(2)
