"""The run contract's invariants, checked on a recorded `History`.

Every check is a pure function of the history and errs on the side of silence:
it reports only what the record proves. Two exchanges are ordered only when one
was answered before the other was sent (`a.t_done < b.t_sent`); concurrent ones
are not, and a check never guesses which landed first.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable
from typing import Any

from runlane.checker.history import (
    ACTIVE,
    FINISHED,
    GONE,
    REMOVED,
    TERMINAL,
    Exchange,
    History,
    Observation,
    RunRecord,
    StreamClaim,
    parse_event_id,
)

# key -> title, in report order
INVARIANTS: dict[str, str] = {
    "1-accepted-means-done": "1 accepted means done (202/200 -> interrupted or rolled back)",
    "2-refused-means-finished": "2 refused means finished (409 <-> success/error/timeout)",
    "3-idempotent": "3 idempotent (duplicates 202/200; the first action wins)",
    "4-nothing-stuck": "4 nothing stuck (terminal within a bound)",
    "5-rollback-keeps-history": "5 rollback keeps pre-run history and state",
    "6-no-5xx": "6 no 5xx (nor dropped connections)",
    "one-run-per-thread": "one run at a time per thread, in order",
    "reject-when-busy": "reject answers 409 exactly while busy",
    "stream-ids": "stream ids unique, increasing; rejoin loses nothing",
    "join-waits": "join answers once the run is terminal",
    "statuses": "terminal statuses absorbing; interrupted only by a cancel",
    "stream-replay": "a resumed stream delivered exactly the run's event log",
    "webhook-delivered": "every run that ended with a webhook was delivered",
}


@dataclasses.dataclass
class Violation:
    invariant: str
    message: str
    run_id: str | None = None
    thread_id: str | None = None
    scenario: str | None = None
    seqs: list[int] = dataclasses.field(default_factory=list)


def _v(invariant: str, message: str, rec: RunRecord | None = None, seqs: list[int] | None = None,
       **kw: Any) -> Violation:
    if rec is not None:
        kw.setdefault("run_id", rec.run_id)
        kw.setdefault("thread_id", rec.thread_id)
        kw.setdefault("scenario", rec.scenario)
    return Violation(invariant, message, seqs=list(seqs or []), **kw)


def _t(x: float | None) -> str:
    return "?" if x is None else f"{x:.3f}s"


# ---------------------------------------------------------------- run helpers


def cancels_of(h: History, rec: RunRecord) -> list[Exchange]:
    return [e for e in h.for_run(rec.run_id) if e.kind == "cancel" and e.run_id == rec.run_id]


def bulks_of(h: History, rec: RunRecord) -> list[Exchange]:
    return [e for e in h.for_run(rec.run_id) if e.kind == "bulk_cancel"]


def multitask_of(h: History, rec: RunRecord) -> list[Exchange]:
    """Creates with strategy interrupt/rollback on the run's thread that may have landed
    after the run existed (all but those answered before the run's create was sent)."""
    sent = h.exchanges[rec.created_seq].t_sent
    return [
        e for e in h.on_thread(rec.thread_id)
        if e.kind in ("create", "stream") and e.run_id != rec.run_id
        and e.extra.get("strategy") in ("interrupt", "rollback")
        and (e.t_done is None or e.t_done > sent)
    ]


def action_of(ex: Exchange) -> str:
    if ex.kind in ("create", "stream"):
        return str(ex.extra.get("strategy"))
    return str(ex.extra.get("action", "interrupt"))


def active_after(h: History, rec: RunRecord, t: float) -> Observation | None:
    """An observation, asked after `t`, that the run was still pending/running."""
    for obs in h.observations(rec.run_id):
        if obs.t_sent > t and obs.status in ACTIVE:
            return obs
    return None


def running_before(h: History, rec: RunRecord, t: float) -> Observation | None:
    """An observation, answered before `t`, that the run was running."""
    for obs in h.observations(rec.run_id):
        if obs.t_done < t and obs.status == "running":
            return obs
    return None


def first_seen(h: History, rec: RunRecord,
               statuses: frozenset[str] | set[str]) -> Observation | None:
    seen = [o for o in h.observations(rec.run_id) if o.status in statuses]
    return min(seen, key=lambda o: o.t_done) if seen else None


def names_status(answer: Any, status: str) -> bool:
    if isinstance(answer, dict) and answer.get("status") == status:
        return True
    text = answer if isinstance(answer, str) else json.dumps(answer, default=str)
    return re.search(rf"\b{re.escape(status)}\b", text or "") is not None


# ------------------------------------------------------------------ invariants


def check_accepted_means_done(h: History) -> list[Violation]:
    out = []
    for rec in h.runs.values():
        final = rec.final_status
        for c in cancels_of(h, rec):
            if not c.accepted:
                continue
            desc = f"cancel #{c.seq} (action={action_of(c)}, wait={c.extra.get('wait')})"
            if final in FINISHED:
                out.append(_v("1-accepted-means-done",
                              f"{desc} answered {c.status} at {_t(c.t_done)}, but the run ended "
                              f"{final!r}", rec, [c.seq]))
            wait = bool(c.extra.get("wait"))
            if c.status != (200 if wait else 202):
                out.append(_v("1-accepted-means-done",
                              f"{desc} answered {c.status}; the contract says "
                              f"{200 if wait else 202} for wait={str(wait).lower()}", rec, [c.seq]))
            if wait and c.status == 200 and isinstance(c.answer, dict) \
                    and c.answer.get("status") in ACTIVE:
                out.append(_v("1-accepted-means-done",
                              f"{desc} answered 200 before the run was terminal "
                              f"(status {c.answer['status']!r})", rec, [c.seq]))
        if final not in FINISHED:
            continue
        for b in [*bulks_of(h, rec), *multitask_of(h, rec)]:
            if not b.ok:
                continue
            if b.kind != "bulk_cancel" and not running_before(h, rec, b.t_sent):
                continue  # a multitask strategy cancels the *running* run
            obs = active_after(h, rec, b.t_done or b.t_sent)
            if obs is not None:
                what = ("bulk cancel" if b.kind == "bulk_cancel"
                        else f"create with multitask_strategy={action_of(b)}")
                out.append(_v("1-accepted-means-done",
                              f"{what} #{b.seq} answered {b.status} at {_t(b.t_done)}; the run "
                              f"was still {obs.status} after that (#{obs.seq}), so the cancel "
                              f"landed on an active run, but it ended {final!r}",
                              rec, [b.seq, obs.seq]))
    return out


def check_refused_means_finished(h: History) -> list[Violation]:
    out = []
    for rec in h.runs.values():
        final = rec.final_status
        cancels = cancels_of(h, rec)
        for c in cancels:
            if c.status != 409:
                continue
            if final in ("interrupted", REMOVED):
                how = "ended 'interrupted'" if final == "interrupted" else "was rolled back"
                out.append(_v("2-refused-means-finished",
                              f"cancel #{c.seq} answered 409 at {_t(c.t_done)} (refused: "
                              f"finished), but the run {how}", rec, [c.seq]))
            elif final in FINISHED and not names_status(c.answer, final):
                out.append(_v("2-refused-means-finished",
                              f"cancel #{c.seq} answered 409 without naming the run's status "
                              f"{final!r}: {c.answer!r}", rec, [c.seq]))
        finished = first_seen(h, rec, FINISHED)
        if finished is not None:
            for c in cancels:
                if c.t_sent > finished.t_done and c.status is not None and c.status < 500 \
                        and c.status != 409 and not c.accepted:
                    out.append(_v("2-refused-means-finished",
                                  f"cancel #{c.seq} of a run already seen {finished.status!r} "
                                  f"(#{finished.seq}) answered {c.status}; the contract says "
                                  f"409 naming {finished.status!r}", rec, [finished.seq, c.seq]))
        for b in bulks_of(h, rec):
            if b.status is not None and 400 <= b.status < 500:
                obs = active_after(h, rec, b.t_done or b.t_sent)
                if obs is not None:
                    out.append(_v("2-refused-means-finished",
                                  f"bulk cancel #{b.seq} answered {b.status} though the run was "
                                  f"still {obs.status} after that (#{obs.seq})",
                                  rec, [b.seq, obs.seq]))
    return out


# Over the complexity ceiling: an invariant, its cases side by side.
def check_idempotent(h: History) -> list[Violation]:  # noqa: C901
    out = []
    for rec in h.runs.values():
        final = rec.final_status
        cancels = cancels_of(h, rec)
        accepted = [c for c in cancels if c.accepted]
        if accepted:
            for c in cancels:
                if c.status is not None and not c.accepted and c.status < 500:
                    out.append(_v("3-idempotent",
                                  f"cancel #{c.seq} (action={action_of(c)}) answered {c.status} "
                                  f"though cancel #{accepted[0].seq} of the same run was "
                                  f"accepted ({accepted[0].status}); every duplicate must be "
                                  f"accepted too", rec, [accepted[0].seq, c.seq]))
        if final not in ("interrupted", REMOVED):
            continue
        # The effective action: the first cancel's. Candidates are the cancel-like
        # requests that may have landed before the first accepted answer.
        likes = [*cancels, *bulks_of(h, rec), *multitask_of(h, rec)]
        done = [e.t_done for e in likes if e.t_done is not None and e.ok]
        if not done:
            continue
        first_answer = min(done)
        candidates = [e for e in likes if e.t_sent < first_answer
                      and (e.ok or e.status is None)]
        actions = {action_of(e) for e in candidates}
        if len(actions) == 1:
            action = actions.pop()
            seqs = [e.seq for e in candidates]
            if action == "rollback" and final == "interrupted":
                out.append(_v("3-idempotent",
                              "the first cancel(s) asked rollback "
                              f"({', '.join('#' + str(s) for s in seqs)}) but the run ended "
                              "'interrupted' instead of being rolled back", rec, seqs))
            elif action == "interrupt" and final == REMOVED:
                out.append(_v("3-idempotent",
                              "the first cancel(s) asked interrupt "
                              f"({', '.join('#' + str(s) for s in seqs)}) but the run was "
                              "removed as by a rollback", rec, seqs))
        reported: dict[str, list[int]] = {}
        for c in accepted:
            if isinstance(c.answer, dict) and c.answer.get("cancel_action"):
                reported.setdefault(c.answer["cancel_action"], []).append(c.seq)
        if isinstance(rec.final, dict) and rec.final.get("cancel_action"):
            reported.setdefault(rec.final["cancel_action"], []).append(-1)
        if len(reported) > 1:
            out.append(_v("3-idempotent",
                          f"answers disagree on the effective cancel_action: {reported} "
                          "(-1 is the final fetch)", rec,
                          [s for seqs in reported.values() for s in seqs if s >= 0]))
    return out


def check_nothing_stuck(h: History) -> list[Violation]:
    out = []
    bound = float(h.settings.get("stuck_after", 30.0))
    for rec in h.runs.values():
        if rec.final_status not in GONE:
            out.append(_v("4-nothing-stuck",
                          f"the run was still {_last_status(h, rec)!r} at {_t(rec.t_final)}, "
                          f"never terminal ({'; '.join(rec.notes) or 'no final state'})", rec))
            continue
        accepted = [c for c in cancels_of(h, rec) if c.accepted and c.t_done is not None]
        end = first_seen(h, rec, GONE)
        if accepted and end is not None:
            t_accept = min(c.t_done for c in accepted if c.t_done is not None)
            if end.t_sent - t_accept > bound:
                out.append(_v("4-nothing-stuck",
                              f"the run took {end.t_sent - t_accept:.1f}s (> {bound:g}s) to "
                              f"become terminal after cancel #{accepted[0].seq} was accepted",
                              rec, [accepted[0].seq, end.seq]))
    for ex in h.exchanges:
        if ex.timed_out:
            unanswered = h.runs.get(ex.run_id or "")
            out.append(_v("4-nothing-stuck",
                          f"#{ex.seq} {ex.describe()} got no answer: {ex.error}", unanswered,
                          [ex.seq],
                          scenario=ex.scenario, thread_id=ex.thread_id, run_id=ex.run_id))
    return out


def _last_status(h: History, rec: RunRecord) -> str:
    obs = h.observations(rec.run_id)
    return obs[-1].status if obs else "unknown"


def check_no_5xx(h: History) -> list[Violation]:
    out = []
    for ex in h.exchanges:
        if ex.status == 503 and h.chaos and h.in_fault(ex):
            continue  # a service restarting: 503 with Retry-After is the promised answer
        if ex.status is not None and ex.status >= 500:
            out.append(Violation("6-no-5xx", f"#{ex.seq} {ex.describe()} answered {ex.status}: "
                                 f"{_short(ex.answer)}", ex.run_id, ex.thread_id, ex.scenario,
                                 [ex.seq]))
        elif ex.error and not ex.timed_out and not h.chaos:
            out.append(Violation("6-no-5xx", f"#{ex.seq} {ex.describe()} failed without an "
                                 f"answer: {ex.error}", ex.run_id, ex.thread_id, ex.scenario,
                                 [ex.seq]))
    return out


def check_rollback_keeps_history(h: History) -> list[Violation]:
    out = []
    for claim in h.rollback_claims:
        rec = h.runs.get(claim.run_id)
        if rec is None or rec.final_status != REMOVED:
            continue
        post = h.snapshots.get(claim.thread_id)
        if post is None:
            continue
        post_ids = [c.get("checkpoint_id") for c in post["checkpoints"]]
        pre_ids = [c.get("checkpoint_id") for c in claim.pre["checkpoints"]]
        missing = [c for c in pre_ids if c not in post_ids]
        seqs = list(claim.pre.get("seqs", [])) + list(post.get("seqs", []))
        if missing:
            out.append(_v("5-rollback-keeps-history",
                          f"the rollback deleted {len(missing)} of the {len(pre_ids)} "
                          f"checkpoint(s) the thread had before the run: {missing[:5]}",
                          rec, seqs))
        own = [c.get("checkpoint_id") for c in post["checkpoints"]
               if c.get("run_id") == claim.run_id]
        if own:
            out.append(_v("5-rollback-keeps-history",
                          f"{len(own)} checkpoint(s) written by the rolled-back run remain in "
                          f"the thread's history: {own[:5]}", rec, seqs))
        if claim.compare_values and (post["values"] or {}) != (claim.pre["values"] or {}):
            out.append(_v("5-rollback-keeps-history",
                          f"the thread's state after the rollback {post['values']!r} is not "
                          f"its state before the run {claim.pre['values']!r}", rec, seqs))
    return out


# Over the complexity ceiling: an invariant, its cases side by side.
def check_one_run_per_thread(h: History) -> list[Violation]:  # noqa: C901
    out = []
    reported: set[tuple[str, ...]] = set()
    for ex in h.of_kind("list"):
        if not ex.ok or not isinstance(ex.answer, list):
            continue
        runs = [r for r in ex.answer if isinstance(r, dict)]
        running = sorted(r["run_id"] for r in runs if r.get("status") == "running")
        if len(running) > 1 and (ex.thread_id or "", *running) not in reported:
            reported.add((ex.thread_id or "", *running))
            out.append(Violation("one-run-per-thread",
                                 f"runs {running} of thread {ex.thread_id} were running at once "
                                 f"(sample #{ex.seq} at {_t(ex.t_done)})",
                                 running[0], ex.thread_id, ex.scenario, [ex.seq]))
        pending = {r["run_id"] for r in runs if r.get("status") == "pending"}
        for late_id in running:
            late = h.runs.get(late_id)
            if late is None or late.strategy != "enqueue":
                continue
            for early_id in pending:
                early = h.runs.get(early_id)
                if early is None or early.strategy != "enqueue":
                    continue
                late_sent = h.exchanges[late.created_seq].t_sent
                if early.t_created < late_sent and ("order", early_id, late_id) not in reported:
                    reported.add(("order", early_id, late_id))
                    out.append(Violation(
                        "one-run-per-thread",
                        f"run {late_id} (created #{late.created_seq}) was running while "
                        f"{early_id}, enqueued before it (#{early.created_seq}), was still "
                        f"pending (sample #{ex.seq}): enqueued runs start in creation order",
                        late_id, ex.thread_id, ex.scenario,
                        [early.created_seq, late.created_seq, ex.seq]))
    for thread_id, snap in h.snapshots.items():
        order = [c.get("run_id") for c in snap["checkpoints"] if c.get("run_id")]
        blocks: list[str] = []
        for run_id in order:
            if not blocks or blocks[-1] != run_id:
                blocks.append(run_id)
        seen: set[str] = set()
        for run_id in blocks:
            if run_id in seen:
                rec = h.runs.get(run_id)
                out.append(Violation("one-run-per-thread",
                                     f"the checkpoints of thread {thread_id} interleave runs: "
                                     f"{blocks} (oldest first)", run_id, thread_id,
                                     rec.scenario if rec else None, list(snap.get("seqs", []))))
                break
            seen.add(run_id)
    for claim in h.span_claims:
        spans = sorted((s for s in claim.spans if isinstance(s, dict)),
                       key=lambda s: s.get("start", 0))
        for span in spans:
            if span.get("overlap"):
                out.append(Violation("one-run-per-thread",
                                     f"run {span.get('run_id')} started while {span['overlap']} "
                                     f"other run(s) of thread {claim.thread_id} were executing "
                                     "(timed graph span)", span.get("run_id"), claim.thread_id,
                                     claim.scenario))
        for a, b in itertools.pairwise(spans):
            if b.get("start", 0) < a.get("end", 0):
                out.append(Violation("one-run-per-thread",
                                     f"run {b.get('run_id')} started {a['end'] - b['start']:.3f}s "
                                     f"before run {a.get('run_id')} ended on thread "
                                     f"{claim.thread_id} (timed graph spans)", b.get("run_id"),
                                     claim.thread_id, claim.scenario))
    return out


def check_reject_when_busy(h: History) -> list[Violation]:
    out = []
    for ex in h.of_kind("create"):
        if ex.extra.get("strategy") != "reject" or ex.t_done is None or ex.thread_id is None:
            continue
        others = [r for r in h.runs_on(ex.thread_id) if r.run_id != ex.run_id]
        if ex.status == 409:
            if any(e.kind in ("create", "stream")
                   and e.run_id is None and e.t_sent < ex.t_done and e.seq != ex.seq
                   and e.status is None for e in h.on_thread(ex.thread_id)):
                continue  # a create of unknown outcome: the thread may have been busy
            earlier = [r for r in others if h.exchanges[r.created_seq].t_sent < ex.t_done]
            ends = [first_seen(h, r, GONE) for r in earlier]
            if all(end is not None and end.t_done < ex.t_sent for end in ends):
                seqs = [e.seq for e in ends if e is not None] + [ex.seq]
                out.append(Violation("reject-when-busy",
                                     f"create #{ex.seq} with multitask_strategy=reject answered "
                                     f"409 though every run of thread {ex.thread_id} was "
                                     "already terminal before it was sent", None,
                                     ex.thread_id, ex.scenario, seqs))
        elif ex.ok:
            for other in others:
                if other.t_created >= ex.t_sent:
                    continue
                obs = active_after(h, other, ex.t_done)
                if obs is not None:
                    out.append(Violation("reject-when-busy",
                                         f"create #{ex.seq} with multitask_strategy=reject "
                                         f"answered {ex.status}, but run {other.run_id} was "
                                         f"still {obs.status} after that (#{obs.seq}): the "
                                         "thread was busy", ex.run_id, ex.thread_id,
                                         ex.scenario, [ex.seq, obs.seq]))
    return out


# Over the complexity ceiling: an invariant, its cases side by side.
def check_stream_ids(h: History) -> list[Violation]:  # noqa: C901
    out = []
    for claim in h.stream_claims:
        rec = h.runs.get(claim.run_id)
        segments = [h.exchanges[s] for s in claim.segments]
        seqs = list(claim.segments)

        def bad(message: str, claim: StreamClaim = claim, seqs: list[int] = seqs) -> None:
            out.append(Violation("stream-ids", message, claim.run_id, claim.thread_id,
                                 claim.scenario, seqs))

        previous: tuple[int, ...] | None = None
        previous_raw: str | None = None
        seen: dict[str, int] = {}
        broken = False
        for seg in segments:
            if seg.status == 503 and h.chaos and h.in_fault(seg):
                broken = True  # a fault's 503 (judged by 6-no-5xx): nothing to compare
                continue
            if seg.status is not None and seg.status != 200:
                bad(f"stream #{seg.seq} {seg.describe()} answered {seg.status}: "
                    f"{_short(seg.answer)}")
                broken = True
                continue
            for event in seg.events or ():
                raw = event.get("id")
                parsed = parse_event_id(raw)
                if raw is None or parsed is None:  # (no id: no parsed id either)
                    bad(f"stream #{seg.seq}: event {event.get('event')!r} has no usable id "
                        f"({raw!r}); Last-Event-ID cannot resume after it")
                    broken = True
                    continue
                if raw in seen:
                    where = (f"in stream #{seg.seq}" if seen[raw] == seg.seq
                             else f"in streams #{seen[raw]} and #{seg.seq}")
                    bad(f"event id {raw} delivered twice ({where})")
                elif previous is not None and parsed <= previous:
                    bad(f"event id {raw} (stream #{seg.seq}) is not after the previous id "
                        f"{previous_raw}")
                seen.setdefault(raw, seg.seq)
                previous, previous_raw = parsed, raw
        if not claim.ticks:
            continue  # not the sleepy graph: check_stream_replay compares with the log
        ticks = [e["data"]["tick"] for seg in segments for e in seg.events or ()
                 if e.get("event") == "custom" and isinstance(e.get("data"), dict)
                 and isinstance(e["data"].get("tick"), int)]
        dups = sorted({t for t in ticks if ticks.count(t) > 1})
        if dups:
            bad(f"custom events repeated across the rejoins: ticks {dups} (all: {ticks})")
        last = segments[-1] if segments else None
        complete = (last is not None and not broken and last.status == 200
                    and not last.dropped and last.error is None)
        if not complete or rec is None or rec.final_status not in TERMINAL:
            continue
        expected_ticks = list(range(1, max(ticks, default=0) + 1))
        if sorted(set(ticks)) != expected_ticks:
            lost = sorted(set(expected_ticks) - set(ticks))
            bad(f"custom events lost across the rejoins: ticks {lost} never delivered "
                f"(got {ticks})")
        elif rec.final_status == "success" and max(ticks, default=0) != claim.steps:
            lost = list(range(max(ticks, default=0) + 1, claim.steps + 1))
            bad(f"the run succeeded with {claim.steps} ticks but ticks {lost} were never "
                f"delivered (got {ticks})")
    return out


def _frame(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event.get("id"), event.get("event"), json.dumps(event.get("data"), sort_keys=True,
                                                            default=str))


def check_stream_replay(h: History) -> list[Violation]:
    """What the client got across the drops, faults and rejoins of a stream must be the
    run's event log as a later join replays it (once the run is over): every event the
    client got is in the log, the same; none of the log's events before the last one
    the client got is missing; a stream that ended normally got all of them."""
    out = []
    for claim in h.stream_claims:
        if claim.replay is None:
            continue
        replay = h.exchanges[claim.replay]
        if replay.status != 200 or replay.error is not None or replay.dropped:
            continue  # no log to compare with (a fault, or a server that keeps none)
        rec = h.runs.get(claim.run_id)
        segments = [h.exchanges[s] for s in claim.segments]
        seqs = [*claim.segments, claim.replay]
        log = [_frame(e) for e in replay.events or ()]
        got = [_frame(e) for seg in segments for e in seg.events or ()]
        if not got:
            continue
        if not log:
            if h.chaos:
                continue  # the log died with its process (one process, no Redis): counted
            out.append(_v("stream-replay", f"the client got {len(got)} event(s) but the "
                          f"replay #{replay.seq} of the run's stream is empty", rec, seqs,
                          run_id=claim.run_id, thread_id=claim.thread_id,
                          scenario=claim.scenario))
            continue
        by_id = {f[0]: f for f in log}
        strays = [f for f in got if by_id.get(f[0]) != f]
        problems = []
        if strays:
            shown = [f"{f[0]} ({f[1]}): log has {by_id.get(f[0], ('', 'nothing'))[1:]!r}"[:200]
                     for f in strays[:3]]
            problems.append(f"{len(strays)} event(s) the client got are not in the run's "
                            f"log as replayed: {shown}")
        got_ids = [f[0] for f in got]
        parsed = [parse_event_id(i) for i in got_ids]
        last = max((p for p in parsed if p is not None), default=None)
        upto = [f[0] for f in log if (parse_event_id(f[0]) or ()) <= (last or ())]
        lost = [i for i in upto if i not in set(got_ids)]
        if lost:
            problems.append(f"event(s) {lost[:10]} of the run's log were never delivered "
                            f"before the last one the client got ({got_ids[-1]})")
        end = segments[-1]
        ended = end.status == 200 and not end.dropped and end.error is None
        if ended and rec is not None and rec.final_status in TERMINAL:
            tail = [f[0] for f in log if (parse_event_id(f[0]) or ()) > (last or ())]
            if tail:
                problems.append(f"the stream ended (#{end.seq}) without event(s) {tail[:10]} "
                                f"of the run's log ({len(log)} events)")
        for problem in problems:
            out.append(_v("stream-replay", problem, rec, seqs, run_id=claim.run_id,
                          thread_id=claim.thread_id, scenario=claim.scenario))
    return out


def check_webhooks(h: History) -> list[Violation]:
    """--webhooks: every run created with a webhook that ended (not removed) was
    delivered at least once, and a delivery names the run's final status."""
    if not h.settings.get("webhook_url"):
        return []
    out = []
    delivered: dict[str, list[dict[str, Any]]] = {}
    for d in h.webhooks:
        delivered.setdefault(d.get("run_id") or "", []).append(d)
    for rec in h.runs.values():
        if rec.webhook is None or rec.final_status not in TERMINAL:
            continue
        got = delivered.get(rec.run_id, [])
        if not got:
            out.append(_v("webhook-delivered", f"the run ended {rec.final_status!r} with a "
                          f"webhook ({rec.webhook}) but the receiver never got it", rec,
                          [rec.created_seq]))
        elif not any(d.get("status") == rec.final_status for d in got):
            out.append(_v("webhook-delivered", f"the run ended {rec.final_status!r} but its "
                          f"webhook said {[d.get('status') for d in got]}", rec,
                          [rec.created_seq]))
    return out


def check_join_waits(h: History) -> list[Violation]:
    out = []
    for ex in h.of_kind("join"):
        rec = h.runs.get(ex.run_id or "")
        if rec is None or ex.status is None:
            continue
        if ex.status == 404 and rec.final_status in TERMINAL:
            out.append(_v("join-waits", f"join #{ex.seq} answered 404 for a run that exists "
                          f"(it ended {rec.final_status!r})", rec, [ex.seq]))
        if not ex.ok:
            continue
        after = [o for o in h.observations(rec.run_id) if o.t_sent > (ex.t_done or 0)]
        if after and after[0].status in ACTIVE:
            out.append(_v("join-waits", f"join #{ex.seq} answered {ex.status} at "
                          f"{_t(ex.t_done)}, but the run was still {after[0].status!r} after "
                          f"that (#{after[0].seq})", rec, [ex.seq, after[0].seq]))
    return out


def check_statuses(h: History) -> list[Violation]:
    out = []
    for rec in h.runs.values():
        obs = h.observations(rec.run_id)
        found = False
        for i, a in enumerate(obs):
            if a.status not in GONE or found:
                continue
            for b in obs[i + 1:]:
                if b.t_sent <= a.t_done or b.status == a.status:
                    continue
                if a.status == "interrupted" and b.status == REMOVED:
                    continue  # a rollback's run is removed after it stops
                if a.status == REMOVED and b.status == "interrupted" and b.kind == "cancel":
                    continue  # a cancel of a rolled-back run may answer with its tombstone
                out.append(_v("statuses", f"the run was seen {a.status!r} (#{a.seq}) and later "
                              f"{b.status!r} (#{b.seq}): terminal statuses are absorbing",
                              rec, [a.seq, b.seq]))
                found = True
                break
        if h.chaos or rec.final_status not in ("interrupted", REMOVED):
            continue
        if not (cancels_of(h, rec) or bulks_of(h, rec) or multitask_of(h, rec)):
            rejects = [e.seq for e in h.on_thread(rec.thread_id) if e.kind == "create"
                       and e.extra.get("strategy") == "reject" and e.t_sent > rec.t_created]
            why = (f" (creates with multitask_strategy=reject on its thread: {rejects})"
                   if rejects else "")
            out.append(_v("reject-when-busy" if rejects else "statuses",
                          f"the run ended {rec.final_status!r} but nobody cancelled it{why}",
                          rec, rejects))
    return out


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


CHECKS: list[Callable[[History], list[Violation]]] = [
    check_accepted_means_done,
    check_refused_means_finished,
    check_idempotent,
    check_nothing_stuck,
    check_rollback_keeps_history,
    check_no_5xx,
    check_one_run_per_thread,
    check_reject_when_busy,
    check_stream_ids,
    check_stream_replay,
    check_join_waits,
    check_statuses,
    check_webhooks,
]


def check_all(h: History) -> list[Violation]:
    found: list[Violation] = []
    for check in CHECKS:
        found.extend(check(h))
    return found
