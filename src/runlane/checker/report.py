"""What a check prints (rich) and dumps (--json)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from runlane.checker.history import TERMINAL, Exchange, History
from runlane.checker.invariants import INVARIANTS, Violation


def summarize(h: History, violations: list[Violation],
              internal_errors: list[str]) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    for ex in h.exchanges:
        if ex.timed_out:
            codes["timeout"] += 1
        elif ex.status is None:
            codes["no answer"] += 1
        else:
            codes[str(ex.status)] += 1
    scenarios: Counter[str] = Counter(s["name"] for s in h.scenarios)
    aborted: Counter[str] = Counter(s["name"] for s in h.scenarios if s.get("aborted"))
    by_invariant = Counter(v.invariant for v in violations)
    # How often the races were hit: each cancel's answer against its run's final status.
    outcomes: Counter[str] = Counter()
    for ex in h.exchanges:
        if ex.kind == "cancel" and ex.run_id in h.runs:
            outcomes[f"{ex.outcome()} -> {h.runs[ex.run_id].final_status}"] += 1
    kinds: Counter[str] = Counter(ex.kind for ex in h.exchanges)
    faults: Counter[str] = Counter(e.get("fault", "?") for e in h.chaos_events
                                   if e["action"] == "window")
    return {
        "scenarios": dict(scenarios),
        "scenarios_aborted": dict(aborted),
        "scenarios_total": len(h.scenarios),
        "runs": len(h.runs),
        "requests": len(h.exchanges),
        "answers_by_code": dict(sorted(codes.items())),
        "violations_by_invariant": {k: by_invariant.get(k, 0) for k in INVARIANTS},
        "cancel_outcomes": dict(sorted(outcomes.items())),
        "violations": len(violations),
        "chaos_kills": sum(1 for e in h.chaos_events if e["action"] == "kill"),
        "requests_by_kind": dict(sorted(kinds.items())),
        "faults_by_kind": dict(sorted(faults.items())),
        "runs_by_final_status": dict(sorted(Counter(
            str(r.final_status) for r in h.runs.values()).items())),
        "streams_resumed": sum(1 for c in h.stream_claims if len(c.segments) > 1),
        "streams_compared_with_replay": sum(
            1 for c in h.stream_claims if c.replay is not None
            and h.exchanges[c.replay].status == 200 and h.exchanges[c.replay].error is None),
        # Replays with no event at all though the client got some: under chaos a log
        # kept in a killed process's memory (one process on SQLite) is gone with it.
        "stream_replays_empty": sum(
            1 for c in h.stream_claims if c.replay is not None
            and h.exchanges[c.replay].status == 200 and not h.exchanges[c.replay].events
            and any(h.exchanges[s].events for s in c.segments)),
        **_webhook_summary(h),
        "internal_errors": len(internal_errors),
    }


def _webhook_summary(h: History) -> dict[str, Any]:
    if not h.settings.get("webhook_url"):
        return {}
    deliveries: Counter[str] = Counter(d.get("run_id") or "" for d in h.webhooks)
    owed = [r.run_id for r in h.runs.values()
            if r.webhook is not None and r.final_status in TERMINAL]
    return {"webhooks": {
        "runs_with_webhook": sum(1 for r in h.runs.values() if r.webhook is not None),
        "owed": len(owed),
        "delivered": sum(1 for r in owed if deliveries[r]),
        "delivered_more_than_once": sum(1 for r in owed if deliveries[r] > 1),
        "deliveries": len(h.webhooks),
    }}


def dump_json(path: Path, h: History, violations: list[Violation], summary: dict[str, Any],
              internal_errors: list[str]) -> None:
    data = {
        "summary": summary,
        "violations": [dataclasses.asdict(v) for v in violations],
        "internal_errors": internal_errors,
        **h.to_json(),
    }
    path.write_text(json.dumps(data, indent=1, default=str))


# -------------------------------------------------------------------- printing

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _answer_text(ex: Exchange) -> str:
    if ex.events is not None and ex.status == 200:
        ids = [e.get("id") for e in ex.events]
        shown = ", ".join(
            f"{e.get('event')}#{e.get('id')}"
            + (f"(tick {e['data']['tick']})" if isinstance(e.get("data"), dict)
               and "tick" in e["data"] else "")
            for e in ex.events[:12])
        more = f" ... ({len(ids)} events)" if len(ids) > 12 else ""
        end = " [dropped by the checker]" if ex.dropped else ""
        if ex.error:
            end += f" [{ex.error}]"
        return shown + more + end
    if ex.error:
        return ex.error
    answer = ex.answer
    if isinstance(answer, dict):
        keys = ("status", "cancel_action", "cancel_reason", "stop_reason", "cancel_outcome",
                "detail")
        picked = {k: answer[k] for k in keys if answer.get(k) is not None}
        if picked:
            return ", ".join(f"{k}={v}" for k, v in picked.items())
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        if "checkpoint_id" in answer[0]:
            return f"{len(answer)} checkpoints"
        return ", ".join(f"{r.get('run_id', '?')[:8]}:{r.get('status')}" for r in answer)
    text = json.dumps(answer, default=str) if answer is not None else ""
    return text[:160] + ("..." if len(text) > 160 else "")


def _rows(exchanges: list[Exchange]) -> list[tuple[str, ...]]:
    """One row per exchange; consecutive polls with the same answer collapsed."""
    rows: list[tuple[str, ...]] = []
    i = 0
    while i < len(exchanges):
        ex = exchanges[i]
        j = i
        if ex.kind in ("poll", "final"):
            while (j + 1 < len(exchanges) and exchanges[j + 1].kind == ex.kind
                   and exchanges[j + 1].status == ex.status
                   and _answer_text(exchanges[j + 1]) == _answer_text(ex)):
                j += 1
        last = exchanges[j]
        times = f"{ex.t_sent:.3f}-{(last.t_done or 0):.3f}"
        request = _UUID.sub(lambda m: m.group(0)[:8] + "..", ex.describe())
        if j > i:
            request += f"  x{j - i + 1}"
        rows.append((f"#{ex.seq}", times, ex.kind, request, last.outcome(), _answer_text(last)))
        i = j + 1
    return rows


def print_violation(console: Console, h: History, v: Violation) -> None:
    title = Text.assemble(("VIOLATION ", "bold red"), (INVARIANTS.get(v.invariant, v.invariant),
                                                      "bold"))
    console.print(title)
    console.print(f"  {v.message}", highlight=False, markup=False)
    where = []
    if v.scenario:
        where.append(f"scenario {v.scenario}")
    if v.thread_id:
        where.append(f"thread {v.thread_id}")
    if v.run_id:
        where.append(f"run {v.run_id}")
    if where:
        console.print("  " + ", ".join(where), style="dim", highlight=False, markup=False)
    related = {ex.seq: ex for ex in h.for_run(v.run_id)} if v.run_id else {}
    for seq in v.seqs:
        if 0 <= seq < len(h.exchanges):
            related.setdefault(seq, h.exchanges[seq])
    if related:
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="dim")
        for column in ("seq", "t (s)", "kind", "request", "code", "answer"):
            table.add_column(column, overflow="fold")
        for row in _rows([related[s] for s in sorted(related)]):
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
    rec = h.runs.get(v.run_id or "")
    if rec is not None:
        console.print(f"  final: {rec.final_status} at {rec.t_final}s "
                      f"{json.dumps(rec.final, default=str)[:300]}", highlight=False,
                      markup=False)
        console.print(f"  run: graph={rec.graph} input={rec.input} strategy={rec.strategy} "
                      f"created at {rec.t_created:.3f}s", style="dim", highlight=False,
                      markup=False)
    console.print()


def print_report(console: Console, h: History, violations: list[Violation],
                 summary: dict[str, Any], internal_errors: list[str], max_shown: int) -> None:
    shown: Counter[str] = Counter()
    hidden: Counter[str] = Counter()
    for v in violations:
        if shown[v.invariant] < max_shown:
            shown[v.invariant] += 1
            print_violation(console, h, v)
        else:
            hidden[v.invariant] += 1
    if hidden:
        console.print(f"[dim]{sum(hidden.values())} more violation(s) not shown "
                      f"(--max-shown {max_shown}; all of them are in --json)[/]")
    for err in internal_errors[:5]:
        console.print(Text.assemble(("checker error: ", "bold yellow"), err))

    scen = Table(title="scenarios", show_edge=False)
    scen.add_column("scenario")
    scen.add_column("run", justify="right")
    scen.add_column("aborted", justify="right")
    for name, count in sorted(summary["scenarios"].items()):
        scen.add_row(name, str(count), str(summary["scenarios_aborted"].get(name, 0)))
    scen.add_row("[bold]total[/]", str(summary["scenarios_total"]),
                 str(sum(summary["scenarios_aborted"].values())))

    codes = Table(title=f"{summary['requests']} requests, {summary['runs']} runs",
                  show_edge=False)
    codes.add_column("answer")
    codes.add_column("count", justify="right")
    for code, count in summary["answers_by_code"].items():
        codes.add_row(Text(code), str(count))

    cancels = Table(title="cancels: answer -> final", show_edge=False)
    cancels.add_column("answer -> run's final status")
    cancels.add_column("count", justify="right")
    for outcome, count in summary["cancel_outcomes"].items():
        cancels.add_row(Text(outcome), str(count))

    inv = Table(title="violations by invariant", show_edge=False)
    inv.add_column("invariant")
    inv.add_column("violations", justify="right")
    for key, count in summary["violations_by_invariant"].items():
        inv.add_row(INVARIANTS[key], f"[bold red]{count}[/]" if count else "[green]0[/]")
    console.print(scen)
    console.print(codes)
    console.print(cancels)
    console.print(inv)
    if h.chaos_events:
        faults = ", ".join(f"{n} {k}" for k, n in summary["faults_by_kind"].items())
        not_ready = [e for e in h.chaos_events if e["action"] == "not ready"]
        console.print(f"chaos: {faults or 'no fault'}; "
                      f"{len(not_ready)} fault(s) not recovered from in time", highlight=False)
    if "webhooks" in summary:
        w = summary["webhooks"]
        console.print(f"webhooks: {w['delivered']} of {w['owed']} runs delivered "
                      f"({w['delivered_more_than_once']} more than once)", highlight=False)
    if violations:
        console.print(f"[bold red]{len(violations)} violation(s)[/]")
    else:
        console.print("[bold green]no violation[/]")
