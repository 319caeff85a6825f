"""`runlane runs ...` and `runlane threads ...`: a small client for a running server
(any runlane or LangGraph-compatible server), over its HTTP API with httpx.

Exit codes are part of the interface (scripts rely on them); see EXIT_CODES.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runlane import credentials
from runlane.errors import CredentialError

DEFAULT_URL = "http://127.0.0.1:2024"

OK, FAILED, USAGE, NOT_FOUND, FINISHED = 0, 1, 2, 3, 4
EXIT_CODES = """\
exit codes:
  0  done
  1  anything else (the server answered an error, e.g. 503 or 500)
  2  usage error: bad arguments, a request the server refused as invalid (422),
     or the server could not be reached
  3  not found: no such run or thread (404)
  4  already finished: the run ended before the cancel (409), e.g. with success
"""

STATUS_STYLES = {
    "pending": "blue", "running": "bold cyan", "success": "green", "error": "bold red",
    "timeout": "magenta", "interrupted": "yellow", "idle": "green", "busy": "cyan",
}
ACTIVE = ("pending", "running")

Row = dict[str, Any]


def _console(stderr: bool = False) -> Console:
    """Piped output (grep, scripts) gets whole lines: ids are never cut at 80 columns."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, highlight=False, width=200 if wide else None)


out = _console()
err = _console(stderr=True)


class Fail(Exception):
    """A command cannot go on: its message for the terminal and its exit code. The
    CLI's own control flow (raised and caught in this module, never by a server), so
    not in runlane.errors' tree."""

    def __init__(self, code: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.body = body  # the server's JSON answer, if any


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:300] or resp.reason_phrase
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    return json.dumps(body)[:300]


class Api:
    """The server's HTTP API; every error becomes a `Fail` with its exit code."""

    def __init__(self, url: str, timeout: float, headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,),
                **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise Fail(USAGE, f"no answer from {self.url} in time ({type(exc).__name__}); "
                              "is the server overloaded? try --timeout") from None
        except httpx.TransportError as exc:
            raise Fail(USAGE, f"cannot reach runlane at {self.url} ({exc or type(exc).__name__});"
                              " is it running? set --url or RUNLANE_URL") from None
        if resp.status_code in ok:
            return resp
        code = {404: NOT_FOUND, 409: FINISHED, 422: USAGE, 400: USAGE,
                401: USAGE}.get(resp.status_code, FAILED)
        if resp.status_code == 401:
            raise Fail(USAGE, f"401: {_detail(resp)} (pass --api-key or --token, or set "
                              "RUNLANE_API_KEY / RUNLANE_TOKEN)")
        try:
            body = resp.json()
        except ValueError:
            body = None
        raise Fail(code, f"{resp.status_code}: {_detail(resp)}", body)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def thread_runs(self, thread_id: str, limit: int, status: str | None = None) -> list[Row]:
        params: Row = {"limit": limit}
        if status:
            params["status"] = status
        return self.json("GET", f"/threads/{thread_id}/runs", params=params)

    def search_threads(self, limit: int, status: str | None = None) -> list[Row]:
        body: Row = {"limit": limit, "sort_by": "updated_at", "sort_order": "desc"}
        if status:
            body["status"] = status
        return self.json("POST", "/threads/search", json=body)

    def active_runs(self, thread_id: str | None, max_threads: int) -> list[Row]:
        """Pending and running runs: of one thread, or of every busy thread (a thread
        is `busy` exactly while it has an active run)."""
        if thread_id:
            threads = [thread_id]
        else:
            threads = [t["thread_id"] for t in self.search_threads(max_threads, "busy")]
        runs: list[Row] = []
        for tid in threads:
            for status in ACTIVE:
                try:
                    runs += self.thread_runs(tid, 100, status)
                except Fail as exc:
                    if exc.code != NOT_FOUND or thread_id:  # a thread deleted meanwhile
                        raise
        return sorted(runs, key=lambda r: r.get("created_at") or "")


# ------------------------------------------------------------------ rendering


def _when(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def age(value: str | None, now: datetime.datetime | None = None) -> str:
    """'4.2s', '3m07s', '2h05m', '3d04h' since an ISO timestamp."""
    then = _when(value)
    if then is None:
        return "-"
    seconds = max(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def styled(status: str | None) -> Text:
    return Text(status or "-", style=STATUS_STYLES.get(status or "", ""))


def _why(run: Row) -> str:
    parts = [run.get("stop_reason") or ""]
    if run.get("cancel_reason"):
        parts.append(f"{run.get('cancel_action') or 'cancel'} by {run['cancel_reason']}")
    return ", ".join(p for p in parts if p) or "-"


def _id_column(table: Table, name: str) -> None:
    table.add_column(name, no_wrap=True, min_width=36)


def runs_table(runs: list[Row], title: str | None = None, why: bool = True) -> Table:
    table = Table(title=title, title_justify="left")
    _id_column(table, "run")
    _id_column(table, "thread")
    table.add_column("status", no_wrap=True)
    table.add_column("age", justify="right", no_wrap=True)
    if why:
        table.add_column("why it stopped", overflow="fold")
    for run in runs:
        cells = [run["run_id"], run["thread_id"], styled(run.get("status")),
                 age(run.get("created_at"))]
        if why:
            cells.append(_why(run) if run.get("status") not in ACTIVE else "")
        table.add_row(*cells)
    return table


def details_table(row: Row, keys: list[str]) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key in keys:
        value = row.get(key)
        if key == "status":
            cell: Any = styled(value)
        elif isinstance(value, (dict, list)):
            text = json.dumps(value, default=str)
            cell = text if len(text) <= 400 else text[:400] + " ..."
        else:
            cell = "-" if value is None else str(value)
        table.add_row(key, cell)
    return table


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


# ------------------------------------------------------------------ commands


def runs_list(api: Api, args: argparse.Namespace) -> int:
    if args.thread:
        runs = api.thread_runs(args.thread, args.limit, args.status)
        title = f"runs of thread {args.thread}"
    else:
        runs = []
        for thread in api.search_threads(args.threads):
            try:
                runs += api.thread_runs(thread["thread_id"], args.limit, args.status)
            except Fail as exc:
                if exc.code != NOT_FOUND:  # a thread deleted meanwhile
                    raise
        runs.sort(key=lambda r: r.get("created_at") or "", reverse=True)
        runs = runs[:args.limit]
        title = f"recent runs of the {args.threads} most recently updated threads"
    if args.json:
        _print_json(runs)
    elif not runs:
        out.print("no runs")
    else:
        out.print(runs_table(runs, title))
    return OK


RUN_KEYS = ["run_id", "thread_id", "assistant_id", "status", "created_at", "updated_at",
            "multitask_strategy", "stop_reason", "cancel_action", "cancel_reason", "error",
            "metadata"]


def runs_get(api: Api, args: argparse.Namespace) -> int:
    run = api.json("GET", f"/threads/{args.thread_id}/runs/{args.run_id}")
    if args.json:
        _print_json(run)
    else:
        out.print(details_table(run, RUN_KEYS))
    return OK


def runs_cancel(api: Api, args: argparse.Namespace) -> int:
    path = f"/threads/{args.thread_id}/runs/{args.run_id}/cancel"
    params = {"wait": "1" if args.wait else "0", "action": args.action}
    try:
        resp = api.request("POST", path, params=params, ok=(200, 202),
                           timeout=None if args.wait else api.http.timeout)
    except Fail as exc:
        if exc.code == FINISHED:
            status = _status_in(exc)
            raise Fail(FINISHED, f"run {args.run_id} already finished: {status}") from None
        if exc.code == NOT_FOUND:
            raise Fail(NOT_FOUND, f"run {args.run_id} not found on thread "
                                  f"{args.thread_id}") from None
        raise
    run = resp.json()
    if args.json:
        _print_json(run)
        return OK
    outcome = run.get("cancel_outcome", "recorded")
    status = run.get("status")
    line = Text(f"run {args.run_id}: ")
    if outcome == "rolled_back" or (run.get("cancel_action") == "rollback"
                                    and status == "interrupted" and args.wait):
        line.append("rolled back", style="yellow")
    elif status in ACTIVE:
        line.append(f"cancel recorded ({run.get('cancel_action')}), stopping; status ")
        line.append_text(styled(status))
    else:
        line.append("ended ")
        line.append_text(styled(status))
        line.append(f" ({_why(run)})")
    if outcome not in ("recorded", "rolled_back"):
        line.append(f"  [{outcome.replace('_', ' ')}]", style="dim")
    out.print(line, soft_wrap=True)
    return OK


def _status_in(exc: Fail) -> str:
    """The status a 409 names (runlane's body has it; other servers' may not)."""
    if isinstance(exc.body, dict) and isinstance(exc.body.get("status"), str):
        return exc.body["status"]
    return exc.message


def runs_watch(api: Api, args: argparse.Namespace) -> int:
    first = api.active_runs(args.thread, args.threads)  # unreachable: exit 2 at once

    def view(runs: list[Row], problem: str | None) -> Group:
        running = sum(r.get("status") == "running" for r in runs)
        clock = datetime.datetime.now().strftime("%H:%M:%S")  # noqa: DTZ005 - local clock
        title = (f"active runs on {api.url}"
                 + (f", thread {args.thread}" if args.thread else "")
                 + f": {running} running, {len(runs) - running} pending"
                 + f"  [{clock}]")
        parts: list[Any] = [runs_table(runs, title, why=False)]
        if problem:
            parts.append(Text(problem, style="red"))
        if not runs:
            parts.append(Text("no active runs", style="dim"))
        return Group(*parts)

    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    runs, problem = first, None
    try:
        with Live(view(runs, problem), console=out, refresh_per_second=4,
                  auto_refresh=False) as live:
            while deadline is None or time.monotonic() < deadline:
                pause = args.interval
                if deadline is not None:
                    pause = min(pause, max(deadline - time.monotonic(), 0))
                time.sleep(pause)
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    runs, problem = api.active_runs(args.thread, args.threads), None
                except Fail as exc:
                    problem = f"refresh failed: {exc.message}"
                live.update(view(runs, problem), refresh=True)
    except KeyboardInterrupt:
        pass
    return OK


THREAD_KEYS = ["thread_id", "status", "created_at", "updated_at", "metadata", "values",
               "interrupts"]


def threads_list(api: Api, args: argparse.Namespace) -> int:
    threads = api.search_threads(args.limit, args.status)
    if args.json:
        _print_json(threads)
        return OK
    if not threads:
        out.print("no threads")
        return OK
    table = Table(title="threads, most recently updated first", title_justify="left")
    _id_column(table, "thread")
    table.add_column("status", no_wrap=True)
    table.add_column("updated", justify="right", no_wrap=True)
    table.add_column("metadata", overflow="fold")
    for thread in threads:
        table.add_row(thread["thread_id"], styled(thread.get("status")),
                      age(thread.get("updated_at")) + " ago",
                      json.dumps(thread.get("metadata") or {}, default=str)[:200])
    out.print(table)
    return OK


def threads_get(api: Api, args: argparse.Namespace) -> int:
    thread = api.json("GET", f"/threads/{args.thread_id}")
    if args.json:
        _print_json(thread)
    else:
        out.print(details_table(thread, THREAD_KEYS))
    return OK


def threads_delete(api: Api, args: argparse.Namespace) -> int:
    try:
        api.request("DELETE", f"/threads/{args.thread_id}", ok=(200, 204))
    except Fail as exc:
        if exc.code == NOT_FOUND:
            raise Fail(NOT_FOUND, f"thread {args.thread_id} not found") from None
        raise
    out.print(f"thread {args.thread_id} deleted, with its runs")
    return OK


# ------------------------------------------------------------------- parsers


def _run(command: Callable[[Api, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def func(args: argparse.Namespace) -> int:
        try:
            headers = credentials.headers_from(args)
        except CredentialError as exc:
            err.print(f"runlane: {exc}")
            return USAGE
        api = Api(args.url, args.timeout, headers)
        try:
            return command(api, args)
        except Fail as exc:
            err.print(f"runlane: {exc.message}", style="red" if exc.code == FAILED else None,
                      soft_wrap=True)
            return exc.code
        except KeyboardInterrupt:  # Ctrl-C outside `runs watch`: the shell's convention
            return 130
        finally:
            api.http.close()

    return func


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def func(args: argparse.Namespace) -> NoReturn:
        parser.print_help(sys.stderr)
        raise SystemExit(USAGE)

    return func


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value}")
    return number


def add_parsers(sub: Any) -> None:
    """Register `runs` and `threads` on `runlane`'s subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("RUNLANE_URL", DEFAULT_URL),
                        help=f"the server (default $RUNLANE_URL or {DEFAULT_URL})")
    common.add_argument("--timeout", type=_positive, default=30.0,
                        help="seconds to wait for each answer (default 30)")
    credentials.add_arguments(common)
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print the server's JSON instead")
    fmt = argparse.RawDescriptionHelpFormatter

    runs = sub.add_parser(
        "runs", help="list, inspect, cancel and watch runs on a server",
        description="Runs on a running server (--url, default $RUNLANE_URL or "
                    f"{DEFAULT_URL}).", epilog=EXIT_CODES, formatter_class=fmt)
    runs.set_defaults(func=_usage(runs))
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="{list,get,cancel,watch}")
    p = runs_sub.add_parser(
        "list", parents=[common, output], epilog=EXIT_CODES, formatter_class=fmt,
        help="recent runs, of one thread or across threads",
        description="Runs newest first. With --thread, that thread's runs; without, the "
                    "runs of the --threads most recently updated threads (thread search, "
                    "then each thread's runs), merged newest first. Stateless runs "
                    "(POST /runs) have no searchable thread and are listed only by --thread.")
    p.add_argument("--thread", help="list this thread's runs")
    p.add_argument("--status", choices=["pending", "running", "success", "error", "timeout",
                                        "interrupted"])
    p.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20)")
    p.add_argument("--threads", type=int, default=20,
                   help="without --thread: how many recent threads to look at (default 20)")
    p.set_defaults(func=_run(runs_list))
    p = runs_sub.add_parser("get", parents=[common, output], epilog=EXIT_CODES,
                            formatter_class=fmt, help="one run")
    p.add_argument("thread_id")
    p.add_argument("run_id")
    p.set_defaults(func=_run(runs_get))
    p = runs_sub.add_parser(
        "cancel", parents=[common, output], epilog=EXIT_CODES, formatter_class=fmt,
        help="cancel a run", description="Cancel a run (the run contract: repeating a cancel "
        "is fine; a run that already finished is refused with exit code 4).")
    p.add_argument("thread_id")
    p.add_argument("run_id")
    p.add_argument("--action", choices=["interrupt", "rollback"], default="interrupt",
                   help="interrupt (keep the checkpoints so far; default) or rollback "
                        "(restore the thread, remove the run)")
    p.add_argument("--wait", action="store_true", help="wait until the run has stopped")
    p.set_defaults(func=_run(runs_cancel))
    p = runs_sub.add_parser(
        "watch", parents=[common], epilog=EXIT_CODES, formatter_class=fmt,
        help="live view of active runs",
        description="A live table of pending and running runs (of every busy thread, or "
                    "of --thread) with their age, refreshed every --interval seconds. "
                    "Ctrl-C or --for SECONDS ends it (exit code 0).")
    p.add_argument("--thread", help="only this thread's runs")
    p.add_argument("--for", dest="seconds", type=_positive, default=None,
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--interval", type=_positive, default=1.0,
                   help="seconds between refreshes (default 1)")
    p.add_argument("--threads", type=int, default=100,
                   help="at most this many busy threads are looked at (default 100)")
    p.set_defaults(func=_run(runs_watch))

    threads = sub.add_parser(
        "threads", help="list, inspect and delete threads on a server",
        description="Threads on a running server (--url, default $RUNLANE_URL or "
                    f"{DEFAULT_URL}).", epilog=EXIT_CODES, formatter_class=fmt)
    threads.set_defaults(func=_usage(threads))
    threads_sub = threads.add_subparsers(dest="threads_command", metavar="{list,get,delete}")
    p = threads_sub.add_parser("list", parents=[common, output], epilog=EXIT_CODES,
                               formatter_class=fmt, help="threads, most recently updated first")
    p.add_argument("--status", choices=["idle", "busy", "interrupted", "error"])
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    p.set_defaults(func=_run(threads_list))
    p = threads_sub.add_parser("get", parents=[common, output], epilog=EXIT_CODES,
                               formatter_class=fmt, help="one thread")
    p.add_argument("thread_id")
    p.set_defaults(func=_run(threads_get))
    p = threads_sub.add_parser("delete", parents=[common], epilog=EXIT_CODES,
                               formatter_class=fmt, help="delete a thread and its runs")
    p.add_argument("thread_id")
    p.set_defaults(func=_run(threads_delete))
