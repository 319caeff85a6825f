"""Preflight, scheduling of the scenarios, chaos, then the checks and the report."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import traceback
from typing import Any

import httpx
from rich.console import Console

from runlane.checker.chaos import Chaos, parse_pids
from runlane.checker.history import Clock, History, Recorder
from runlane.checker.invariants import check_all
from runlane.checker.report import dump_json, print_report, summarize
from runlane.checker.scenarios import SCENARIOS, Abort, Context, Session, pick


class UsageError(Exception):
    """`runlane check` cannot start as asked (printed, exit 2): the checker's own
    control flow, client-side, so not in runlane.errors' tree."""


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
                    timed: str | None) -> str | None:
    """Every URL reachable, `graph` served; the timed graph's id if it is served too."""
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
        return timed if timed and await served(timed) else None
    except httpx.HTTPError as exc:
        raise UsageError(f"assistants search failed: {type(exc).__name__}: {exc}") from None


# Over the complexity ceiling: each option checked, then the whole check run.
async def check(args: argparse.Namespace, console: Console, err: Console) -> int:  # noqa: C901
    names = list(SCENARIOS)
    if args.scenarios:
        names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown or not names:
            raise UsageError(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    if args.concurrency < 1 or (args.trials is not None and args.trials < 1) \
            or args.duration <= 0:
        raise UsageError("--concurrency, --trials and --duration must be positive")
    pids: list[int] = []
    if args.chaos:
        if not args.pids or not args.restart_cmd:
            raise UsageError("--chaos needs --pids and --restart-cmd (see runlane check --help)")
        try:
            pids = parse_pids(args.pids)
        except ValueError as exc:
            raise UsageError(f"--pids: {exc}") from None
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
        "restart_cmd": args.restart_cmd,
    }
    history = History(settings)
    clock = Clock()
    # Idle connections are closed well before a server's keep-alive timeout (uvicorn: 5s),
    # so a request never races the server closing the connection it reuses.
    limits = httpx.Limits(max_connections=args.concurrency * 16 + 32,
                          max_keepalive_connections=args.concurrency * 8 + 8,
                          keepalive_expiry=1.0)
    internal_errors: list[str] = []
    async with httpx.AsyncClient(headers=headers, limits=limits,
                                 timeout=stuck_after + 10) as client:
        timed = await preflight(client, urls, args.graph, args.timed_graph or None)
        if not timed and "timed_order" in names:
            names.remove("timed_order")
            if not names:
                raise UsageError("timed_order needs the `timed` graph, which is not served")
        settings["timed_graph"] = timed
        settings["scenarios"] = names
        plan = (f"{args.trials} scenarios" if args.trials is not None
                else f"{args.duration:g}s")
        err.print(f"runlane check {' '.join(urls)}: {plan}, "
                  f"concurrency {args.concurrency}, seed {seed}, "
                  f"graph {args.graph}{', timed ' + timed if timed else ''}"
                  f"{', chaos on pids ' + str(pids) if pids else ''}", highlight=False)
        recorder = Recorder(client, history, clock, timeout=stuck_after + 10, urls=urls)
        ctx = Context(recorder=recorder, history=history, graph=args.graph, seed=seed,
                      stuck_after=stuck_after, timed_graph=timed)
        chooser = random.Random(seed)
        started = 0
        deadline = clock() + args.duration

        async def worker() -> None:
            nonlocal started
            while True:
                if args.trials is not None:
                    if started >= args.trials:
                        return
                elif clock() >= deadline:
                    return
                index = started
                started += 1
                name = pick(chooser, names)
                session = Session(ctx, name, index)
                entry: dict[str, Any] = {"id": session.id, "name": name, "t_start": clock()}
                history.scenarios.append(entry)
                fn = SCENARIOS[name][0]
                try:
                    await asyncio.wait_for(fn(session), stuck_after * 3 + 60)
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

        async def progress(stop: asyncio.Event) -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 5)
                except TimeoutError:
                    err.print(f"  {clock():6.1f}s: {len(history.scenarios)} scenarios, "
                              f"{len(history.exchanges)} requests", highlight=False)

        stop = asyncio.Event()
        side = [asyncio.ensure_future(progress(stop))]
        chaos = None
        if args.chaos:
            chaos = Chaos(pids=pids, restart_cmd=args.restart_cmd, urls=urls, history=history,
                          clock=clock, rng=random.Random(f"{seed}:chaos"),
                          interval=args.chaos_interval, restart_timeout=args.restart_timeout,
                          log_path=args.chaos_log, headers=headers)
            side.append(asyncio.ensure_future(chaos.run(stop)))
        try:
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        finally:
            stop.set()
            await asyncio.gather(*side, return_exceptions=True)
        if chaos is not None:
            settings["restarted_pids"] = chaos.new_pids()
        if args.cleanup:
            for thread_id in {r.thread_id for r in history.runs.values()}:
                try:
                    await client.delete(f"{url}/threads/{thread_id}")
                except httpx.HTTPError:
                    pass

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
    if violations:
        return 1
    if internal_errors:
        err.print("[bold yellow]runlane check: the checker itself failed; the check is "
                  "inconclusive[/]")
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(2)
