"""`runlane check`: the contract checker.

- end to end: the real CLI, as a subprocess, against a real runlane server: no violation;
- the invariant checks on small hand-made histories: a correct one passes, and each
  kind of broken one is caught (accepted cancel then success, 409 then interrupted,
  a duplicate cancel answered 404, a 500, a repeated stream event id, ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import GRAPHS_CONFIG, ServerProcess, free_port
from runlane.checker.history import (
    Exchange,
    History,
    RollbackClaim,
    RunRecord,
    StreamClaim,
)
from runlane.checker.invariants import check_all

# ------------------------------------------------------------------ end to end


def run_check(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runlane.cli", "check", *args],
        check=False, capture_output=True, text=True, timeout=timeout,
    )


def test_runlane_passes_its_own_check(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    urls = getattr(server, "urls", None) or [server.url]  # a cluster: every worker in turn
    done = run_check(*urls, "--duration", "12", "--concurrency", "3", "--seed", "7",
                     "--json", str(out), "--cleanup")
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-20000:]
    data = json.loads(out.read_text())
    assert data["violations"] == [], report[-20000:]
    summary = data["summary"]
    assert summary["scenarios_total"] >= 5, summary
    assert summary["requests"] > 100, summary
    assert set(summary["scenarios"]) >= {"duplicate_cancels", "cancel_vs_completion",
                                         "double_text"}, summary
    assert "no violation" in done.stdout
    # the record is complete: every run the check made has a final state
    assert data["runs"] and all(r["final_status"] for r in data["runs"].values())


def test_chaos_kills_and_restarts_a_worker(tmp_path: Path) -> None:
    """--chaos: the checker SIGKILLs the server and restarts it with --restart-cmd, twice
    or so; runs caught by a crash still obey the contract."""
    first = ServerProcess(tmp_path / "server").start()
    assert first.proc is not None
    restart = (f"exec {sys.executable} -m runlane.cli serve --config {GRAPHS_CONFIG} "
               f"--port {first.port} --database-url {first.database_url}")
    out = tmp_path / "check.json"
    restarted: list[int] = []
    try:
        done = run_check(first.url, "--duration", "12", "--concurrency", "3", "--seed", "3",
                         "--chaos", "--pids", str(first.proc.pid), "--restart-cmd", restart,
                         "--chaos-interval", "5", "--chaos-log", str(tmp_path / "chaos.log"),
                         "--json", str(out), timeout=400)
        data = json.loads(out.read_text())
        restarted = data["summary"].get("restarted_pids", [])
        assert done.returncode == 0, (done.stdout + done.stderr)[-20000:]
        kills = [e for e in data["chaos_events"] if e["action"] == "kill"]
        assert kills and kills[0]["pid"] == first.proc.pid, data["chaos_events"]
        assert any(e["action"] == "ready" for e in data["chaos_events"]), data["chaos_events"]
        assert data["violations"] == []
    finally:
        for pid in restarted:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        first.stop()


def test_unreachable_server_is_exit_2() -> None:
    done = run_check(f"http://127.0.0.1:{free_port()}", "--trials", "1", timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot reach" in done.stderr


def test_unknown_graph_is_exit_2(server: ServerProcess) -> None:
    done = run_check(server.url, "--trials", "1", "--graph", "no-such-graph", timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "does not serve" in done.stderr


def test_chaos_needs_pids_and_restart_cmd(server: ServerProcess) -> None:
    done = run_check(server.url, "--trials", "1", "--chaos", timeout=60)
    assert done.returncode == 2
    assert "--pids" in done.stderr


# ------------------------------------------------------- hand-made histories

T, R = "thread-1", "run-1"


class Builder:
    """A tiny DSL for histories: exchanges at given instants, one run per id."""

    def __init__(self) -> None:
        self.h = History({"stuck_after": 30.0})

    def ex(self, kind: str, status: int | None, t_sent: float, t_done: float, *,
           run_id: str | None = R, thread_id: str = T, answer: Any = None,
           method: str = "POST", path: str = "/x", **kw: Any) -> Exchange:
        return self.h.add(Exchange(seq=0, scenario="hand-made", kind=kind, method=method,
                                   path=path, thread_id=thread_id, run_id=run_id,
                                   t_sent=t_sent, t_done=t_done, status=status,
                                   answer=answer, **kw))

    def run(self, final: str, *, run_id: str = R, thread_id: str = T, t: float = 0.0,
            strategy: str = "enqueue", final_answer: Any = None) -> RunRecord:
        created = self.ex("create", 200, t, t + 0.01, run_id=run_id, thread_id=thread_id,
                          answer={"run_id": run_id, "status": "pending"},
                          extra={"strategy": strategy})
        rec = RunRecord(run_id=run_id, thread_id=thread_id, scenario="hand-made",
                        graph="sleepy", input={"steps": 3, "delay": 0.1}, strategy=strategy,
                        created_seq=created.seq, t_created=t + 0.01, final_status=final,
                        final=final_answer or {"run_id": run_id, "status": final},
                        t_final=5.0)
        self.h.runs[run_id] = rec
        return rec

    def get(self, status: str | None, t: float, *, run_id: str = R, kind: str = "get") -> Exchange:
        if status is None:
            return self.ex(kind, 404, t, t + 0.01, run_id=run_id, method="GET",
                           answer={"detail": "not found"})
        return self.ex(kind, 200, t, t + 0.01, run_id=run_id, method="GET",
                       answer={"run_id": run_id, "status": status})

    def cancel(self, status: int, t_sent: float, t_done: float, *, wait: bool = False,
               action: str = "interrupt", answer: Any = None, run_id: str = R) -> Exchange:
        return self.ex("cancel", status, t_sent, t_done, run_id=run_id,
                       answer=answer, extra={"wait": wait, "action": action})

    def invariants(self) -> set[str]:
        return {v.invariant for v in check_all(self.h)}


def test_a_correct_history_has_no_violation() -> None:
    b = Builder()
    b.run("interrupted", final_answer={"run_id": R, "status": "interrupted",
                                       "cancel_action": "interrupt"})
    b.get("running", 0.1)
    b.cancel(202, 0.2, 0.21, answer={"run_id": R, "status": "running",
                                     "cancel_action": "interrupt"})
    b.cancel(202, 0.2, 0.22, answer={"run_id": R, "status": "running",
                                     "cancel_action": "interrupt"})
    b.cancel(200, 0.2, 0.4, wait=True, answer={"run_id": R, "status": "interrupted",
                                                "cancel_action": "interrupt"})
    b.get("interrupted", 0.5, kind="final")
    b.cancel(202, 0.6, 0.61, answer={"run_id": R, "status": "interrupted"})
    b.run("success", run_id="run-2", t=1.0)
    b.get("success", 2.0, run_id="run-2", kind="final")
    b.cancel(409, 2.1, 2.11, run_id="run-2",
             answer={"detail": "run already finished with status 'success'",
                     "status": "success"})
    assert check_all(b.h) == []


def test_accepted_cancel_followed_by_success_is_caught() -> None:
    b = Builder()
    b.run("success")
    b.get("running", 0.1)
    b.cancel(202, 0.2, 0.21)
    b.get("success", 1.0, kind="final")
    assert "1-accepted-means-done" in b.invariants()


def test_409_for_a_run_that_ends_interrupted_is_caught() -> None:
    b = Builder()
    b.run("interrupted")
    b.cancel(409, 0.2, 0.21, answer={"detail": "already finished", "status": "success"})
    b.cancel(202, 0.2, 0.22)
    b.get("interrupted", 1.0, kind="final")
    found = b.invariants()
    assert "2-refused-means-finished" in found
    assert "3-idempotent" in found  # a concurrent duplicate got 409 while another got 202


def test_409_that_does_not_name_the_status_is_caught() -> None:
    b = Builder()
    b.run("success")
    b.get("success", 0.5, kind="final")
    b.cancel(409, 1.0, 1.01, answer={"detail": "conflict"})
    assert "2-refused-means-finished" in b.invariants()


def test_finished_run_cancel_answered_404_is_caught() -> None:
    # the reference server's answer for a run that already succeeded
    b = Builder()
    b.run("success")
    b.get("success", 0.5, kind="final")
    b.cancel(404, 1.0, 1.01, answer={"detail": "No matching runs to cancel."})
    assert "2-refused-means-finished" in b.invariants()


def test_duplicate_cancel_answered_404_is_caught() -> None:
    b = Builder()
    b.run("interrupted")
    b.cancel(202, 0.2, 0.21)
    b.cancel(404, 0.3, 0.31, answer={"detail": "No matching runs to cancel."})
    b.get("interrupted", 1.0, kind="final")
    assert b.invariants() == {"3-idempotent"}


def test_second_action_winning_is_caught() -> None:
    b = Builder()
    b.run("interrupted", final_answer={"run_id": R, "status": "interrupted",
                                       "cancel_action": "interrupt"})
    b.cancel(202, 0.2, 0.21, action="rollback")
    b.cancel(202, 0.3, 0.31, action="interrupt")
    assert "3-idempotent" in b.invariants()


def test_a_500_is_caught() -> None:
    b = Builder()
    b.run("interrupted")
    b.cancel(202, 0.2, 0.21)
    b.cancel(500, 0.2, 0.25, answer="Internal Server Error")
    assert "6-no-5xx" in b.invariants()


def test_a_dropped_connection_is_caught_unless_chaos() -> None:
    b = Builder()
    b.run("success")
    b.ex("get", None, 0.1, 0.2, method="GET", error="RemoteProtocolError: disconnected")
    assert "6-no-5xx" in b.invariants()
    b.h.settings["chaos"] = True
    assert "6-no-5xx" not in b.invariants()


def test_a_stream_that_repeats_an_event_id_is_caught() -> None:
    b = Builder()
    b.run("success")
    first = b.ex("stream", 200, 0.0, 0.3, answer=None, dropped=True, events=[
        {"event": "metadata", "id": "1", "data": {"run_id": R}},
        {"event": "custom", "id": "2", "data": {"tick": 1}},
        {"event": "custom", "id": "3", "data": {"tick": 2}},
    ])
    rejoin = b.ex("stream", 200, 0.4, 0.9, method="GET", headers={"Last-Event-ID": "3"},
                  events=[
                      {"event": "custom", "id": "3", "data": {"tick": 2}},  # repeated
                      {"event": "custom", "id": "4", "data": {"tick": 3}},
                  ])
    b.h.stream_claims.append(StreamClaim(T, R, "hand-made", 3, [first.seq, rejoin.seq]))
    assert b.invariants() == {"stream-ids"}
    messages = [v.message for v in check_all(b.h)]
    assert any("delivered twice" in m for m in messages), messages


def test_a_stream_that_loses_events_on_rejoin_is_caught() -> None:
    b = Builder()
    b.run("success")
    first = b.ex("stream", 200, 0.0, 0.3, dropped=True, events=[
        {"event": "metadata", "id": "1", "data": {"run_id": R}},
        {"event": "custom", "id": "2", "data": {"tick": 1}},
    ])
    rejoin = b.ex("stream", 200, 0.4, 0.9, method="GET", headers={"Last-Event-ID": "2"},
                  events=[{"event": "custom", "id": "4", "data": {"tick": 3}}])
    b.h.stream_claims.append(StreamClaim(T, R, "hand-made", 3, [first.seq, rejoin.seq]))
    assert b.invariants() == {"stream-ids"}


def test_a_run_never_terminal_is_caught() -> None:
    b = Builder()
    b.run("active")
    b.cancel(202, 0.2, 0.21)
    b.get("running", 40.0, kind="final")
    assert "4-nothing-stuck" in b.invariants()


def test_a_rollback_that_deletes_pre_run_history_is_caught() -> None:
    b = Builder()
    b.run("removed")
    b.cancel(202, 0.2, 0.21, action="rollback")
    b.get(None, 1.0, kind="final")
    pre = {"values": {"ticks": 2}, "checkpoints": [
        {"checkpoint_id": "c1", "run_id": "seed"}, {"checkpoint_id": "c2", "run_id": "seed"}]}
    b.h.rollback_claims.append(RollbackClaim(T, R, "hand-made", pre, compare_values=True))
    b.h.snapshots[T] = {"values": {"ticks": 1}, "checkpoints": [
        {"checkpoint_id": "c1", "run_id": "seed"}]}
    found = [v for v in check_all(b.h) if v.invariant == "5-rollback-keeps-history"]
    assert len(found) == 2, found  # a checkpoint is gone, and the state differs


def test_two_runs_of_a_thread_running_at_once_are_caught() -> None:
    b = Builder()
    b.run("success")
    b.run("success", run_id="run-2", t=0.1)
    b.ex("list", 200, 0.5, 0.51, run_id=None, method="GET", answer=[
        {"run_id": R, "status": "running"}, {"run_id": "run-2", "status": "running"}])
    assert "one-run-per-thread" in b.invariants()


def test_reject_admitting_a_run_on_a_busy_thread_is_caught() -> None:
    b = Builder()
    b.run("success")
    b.get("running", 0.1)
    b.run("success", run_id="run-2", t=0.2, strategy="reject")
    b.get("running", 0.3)  # the first run, still active after the reject was admitted
    assert "reject-when-busy" in b.invariants()


@pytest.mark.parametrize("later", ["interrupted", "running"])
def test_a_terminal_status_that_changes_is_caught(later: str) -> None:
    b = Builder()
    b.run(later if later == "interrupted" else "success")
    b.get("success", 0.1)
    b.get(later, 0.3)
    assert "statuses" in b.invariants()


# ------------------------------------- resumed streams, webhooks, faults' 503s

def _ev(i: int, token: str) -> dict[str, Any]:
    return {"event": "messages", "id": str(i), "data": [{"content": token}, {}]}


LOG = [{"event": "metadata", "id": "1", "data": {"run_id": R}},
       *(_ev(i, f"w{i}") for i in range(2, 7))]


def _streamed(b: Builder, segments: list[list[dict[str, Any]]], replay: list[dict[str, Any]],
              last_error: str | None = None) -> None:
    seqs = []
    for n, events in enumerate(segments):
        last = n == len(segments) - 1
        seqs.append(b.ex("stream", 200, n, n + 0.5, method="GET", events=events,
                         dropped=not last, error=last_error if last else None).seq)
    replayed = b.ex("replay", 200, 9.0, 9.1, method="GET", events=replay)
    b.h.stream_claims.append(StreamClaim(T, R, "hand-made", 5, seqs, replay=replayed.seq,
                                         ticks=False))


def test_a_resumed_stream_equal_to_its_replayed_log_passes() -> None:
    b = Builder()
    b.run("success")
    _streamed(b, [LOG[:2], LOG[2:4], LOG[4:]], LOG)
    assert b.invariants() == set()


def test_a_resumed_stream_missing_an_event_of_the_log_is_caught() -> None:
    b = Builder()
    b.run("success")
    _streamed(b, [LOG[:2], LOG[3:]], LOG)  # event 3 never delivered
    assert b.invariants() == {"stream-replay"}
    messages = [v.message for v in check_all(b.h)]
    assert any("['3']" in m for m in messages), messages


def test_a_stream_that_ends_before_the_end_of_the_log_is_caught() -> None:
    b = Builder()
    b.run("success")
    _streamed(b, [LOG[:2], LOG[2:4]], LOG)  # ended normally without 5 and 6
    assert b.invariants() == {"stream-replay"}


def test_an_event_the_log_does_not_have_is_caught() -> None:
    # A worker died: the client got event 6 from it, but the log (Redis) replays
    # another event 6 (the one written by whoever recorded the run's end).
    b = Builder()
    b.h.settings["chaos"] = True  # (a cut connection is no violation then)
    b.run("error")
    _streamed(b, [LOG[:5], LOG[5:6]], [*LOG[:5], _ev(6, "reaper")], last_error="cut")
    assert b.invariants() == {"stream-replay"}
    messages = [v.message for v in check_all(b.h)]
    assert any("not in the run's log" in m for m in messages), messages


def test_a_cut_stream_compares_only_up_to_what_it_got() -> None:
    b = Builder()
    b.h.settings["chaos"] = True
    b.run("error")
    _streamed(b, [LOG[:2], LOG[2:4]], LOG, last_error="RemoteProtocolError: peer closed")
    assert b.invariants() == set()


def test_a_run_that_ended_with_a_webhook_never_delivered_is_caught() -> None:
    b = Builder()
    b.h.settings["webhook_url"] = "http://127.0.0.1:1/hook"
    b.run("success").webhook = "http://127.0.0.1:1/hook/x"
    b.run("removed", run_id="run-2", t=1.0).webhook = "http://127.0.0.1:1/hook/y"
    b.get("success", 2.0, kind="final")
    b.get(None, 2.0, run_id="run-2", kind="final")
    b.cancel(202, 1.1, 1.2, action="rollback", run_id="run-2")
    assert b.invariants() == {"webhook-delivered"}  # run-2 was removed: it owes none
    b.h.webhooks.append({"run_id": R, "status": "success", "t": 3.0})
    assert b.invariants() == set()
    b.h.webhooks[0]["status"] = "error"
    assert b.invariants() == {"webhook-delivered"}  # delivered, with another status


def test_a_503_is_tolerated_only_inside_a_fault_window() -> None:
    b = Builder()
    b.h.settings["chaos"] = True
    b.run("success")
    b.h.chaos_events.append({"t": 10.0, "action": "window", "fault": "postgres",
                             "t_end": 12.0})
    b.ex("thread", 503, 11.0, 11.1, run_id=None, answer={"detail": "database unavailable"})
    assert b.invariants() == set()
    b.ex("thread", 503, 40.0, 40.1, run_id=None, answer={"detail": "database unavailable"})
    assert b.invariants() == {"6-no-5xx"}
    b = Builder()
    b.run("success")
    b.ex("thread", 503, 11.0, 11.1, run_id=None)
    assert b.invariants() == {"6-no-5xx"}  # without chaos a 503 is never expected
