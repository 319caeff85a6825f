"""Cron use cases: create, read, change and delete crons, and fire one.

A firing creates a normal run through the service (`Runlane.create_run`), so it
follows the same contract as a client's run: on a thread, the cron's multitask
strategy meets the thread's active run exactly as a second client's run would
(default `enqueue`, as the reference server); a stateless cron's run gets a thread of
its own, deleted after the run unless `on_run_completed` is `keep`. No HTTP here.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import uuid
from typing import Any

from runlane.errors import AlreadyFired, BadRequest, Conflict, NotFound
from runlane.owners import Owner
from runlane.records import Columns, Cron, Run
from runlane.serde import JSONObject, to_jsonable, utcnow
from runlane.service import schedules
from runlane.service.runs import Runlane, RunRequest
from runlane.store.crons import CronStore

log = logging.getLogger("runlane.crons")

# Run fields a cron's payload carries to every run it creates.
RUN_FIELDS = ("input", "config", "context", "metadata", "interrupt_before", "interrupt_after",
              "multitask_strategy", "stream_mode", "stream_subgraphs", "stream_resumable",
              "durability", "checkpoint_during", "webhook")


@dataclasses.dataclass
class CronSpec:
    """A validated cron, as a client described it (api/cron_models.py: wire shape)."""

    assistant_id: str
    schedule: str
    payload: JSONObject  # RUN_FIELDS that were given
    metadata: JSONObject = dataclasses.field(default_factory=dict)
    end_time: datetime.datetime | None = None
    enabled: bool = True
    timezone: str | None = None
    on_run_completed: str | None = None  # stateless crons only


def next_firing(schedule: str, timezone: str | None, end_time: datetime.datetime | None,
                after: datetime.datetime) -> datetime.datetime | None:
    """The cron's next firing after `after`; None once `end_time` has passed it."""
    fire = schedules.next_after(schedule, timezone, after)
    if end_time is not None and fire > end_time:
        return None
    return fire


class Crons:
    def __init__(self, store: CronStore, runlane: Runlane) -> None:
        self.store = store
        self.runlane = runlane
        # Called after a change that can bring a firing closer (the scheduler's wake).
        self.on_change: Any = None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def create(self, thread_id: str | None, spec: CronSpec, *,
                     owner: Owner = None, user: JSONObject | None = None) -> Cron:
        """`user`: the authenticated creator (identity, permissions ...), None with
        auth off: kept with the cron, each firing's run runs as this user."""
        now = utcnow()
        following = next_firing(spec.schedule, spec.timezone, spec.end_time, now)
        # The owner's own assistant or a shared one: another owner's is NotFound, as
        # for a run (a cron must not run, later, what its owner cannot run now).
        assistant = await self.runlane.resolve_assistant(spec.assistant_id, owner=owner)
        if assistant.graph_id not in self.runlane.graphs:
            raise BadRequest(f"graph {assistant.graph_id!r} is not served here")
        if thread_id is not None and not await self.store.thread_visible(thread_id, owner=owner):
            raise NotFound(f"thread {thread_id} not found")
        payload: JSONObject = {**spec.payload, "assistant_id": assistant.assistant_id}
        if spec.timezone is not None:
            payload["timezone"] = spec.timezone
        if thread_id is None:
            payload["on_run_completed"] = spec.on_run_completed or "delete"
        row: Columns = {
            "cron_id": str(uuid.uuid4()),
            "assistant_id": assistant.assistant_id,
            "thread_id": thread_id,
            "schedule": spec.schedule,
            "payload": payload,
            "metadata": spec.metadata,
            "user_id": owner,
            "owner": owner,
            "auth_user": to_jsonable(user) if user is not None else None,
            "enabled": spec.enabled,
            "end_time": spec.end_time,
            "next_run_date": following,
            "created_at": now,
            "updated_at": now,
        }
        created = await self.store.insert(row)
        log.info("cron %s created: %r on %s", row["cron_id"], spec.schedule,
                 f"thread {thread_id}" if thread_id else "stateless runs",
                 extra={"event": "cron_created", "cron_id": row["cron_id"],
                        "thread_id": thread_id})
        self._changed()
        return created

    async def get(self, cron_id: str, *, owner: Owner = None,
                  auth_filter: JSONObject | None = None) -> Cron:
        row = await self.store.get(cron_id, owner=owner, auth_filter=auth_filter)
        if row is None:
            raise NotFound(f"cron {cron_id} not found")
        return row

    async def update(self, cron_id: str, changes: JSONObject, *, owner: Owner = None,
                     auth_filter: JSONObject | None = None) -> Cron:
        """`changes`: schedule, timezone, end_time, enabled, metadata, on_run_completed
        and run fields (RUN_FIELDS), each only if given. `metadata` is merged key by
        key into the cron's (as the LangGraph server does) and into its runs'; the
        other fields replace. The next firing is recomputed from now whenever what
        decides it changed. Read and written in one transaction (CronStore.change).
        `auth_filter`: the authorization handler's filters the cron must pass (on its
        metadata as it is now)."""
        now = utcnow()

        def values_for(current: Cron) -> Columns:
            payload = dict(current.payload)
            values: Columns = {}
            for field in RUN_FIELDS:
                if field in changes:
                    payload[field] = changes[field]
            if "metadata" in changes:
                merged = {**(current.metadata or {}), **(changes["metadata"] or {})}
                values["metadata"] = merged
                payload["metadata"] = {**(current.payload.get("metadata") or {}),
                                       **(changes["metadata"] or {})}
            if "timezone" in changes:
                payload["timezone"] = changes["timezone"]
            if "on_run_completed" in changes:
                if current.thread_id is not None:
                    raise BadRequest("on_run_completed applies to stateless crons only; cron "
                                     f"{cron_id} runs on thread {current.thread_id}")
                payload["on_run_completed"] = changes["on_run_completed"]
            for field in ("schedule", "end_time", "enabled"):
                if field in changes:
                    values[field] = changes[field]
            schedule = values.get("schedule", current.schedule)
            end_time = values.get("end_time", current.end_time)
            if {"schedule", "timezone", "end_time", "enabled"} & set(changes):
                values["next_run_date"] = next_firing(schedule, payload.get("timezone"),
                                                      end_time, now)
            values["payload"] = payload
            values["updated_at"] = now
            return values

        row = await self.store.change(cron_id, values_for, owner=owner, auth_filter=auth_filter)
        if row is None:
            raise NotFound(f"cron {cron_id} not found")
        self._changed()
        return row

    async def delete(self, cron_id: str, *, owner: Owner = None,
                     auth_filter: JSONObject | None = None) -> None:
        """Stops future firings; runs already created stay."""
        if not await self.store.delete(cron_id, owner=owner, auth_filter=auth_filter):
            raise NotFound(f"cron {cron_id} not found")

    async def search(self, *, owner: Owner = None, **filters: Any) -> list[Cron]:
        return await self.store.search(owner=owner, **filters)

    async def count(self, *, owner: Owner = None, **filters: Any) -> int:
        return await self.store.count(owner=owner, **filters)

    # ------------------------------------------------------------------ firing

    async def fire(self, cron: Cron, fired_at: datetime.datetime) -> Run | None:
        """Create the run of one claimed firing, on behalf of the cron's owner (and as
        the user who created it: `langgraph_auth_user` and the rest). A
        firing that cannot create its run (thread gone, `reject` on a busy thread)
        is logged and skipped; a cron whose thread is gone is deleted (it can never
        fire again, as the reference server deletes a thread's crons with it)."""
        payload = cron.payload
        request = RunRequest(
            assistant_id=cron.assistant_id,
            input=payload.get("input"),
            config=payload.get("config"),
            context=payload.get("context"),
            metadata={**(payload.get("metadata") or {}), "cron_id": cron.cron_id,
                      "cron_fired_at": fired_at.isoformat()},
            stream_mode=_modes(payload.get("stream_mode")),
            stream_subgraphs=bool(payload.get("stream_subgraphs")),
            interrupt_before=payload.get("interrupt_before"),
            interrupt_after=payload.get("interrupt_after"),
            multitask_strategy=payload.get("multitask_strategy") or "enqueue",
            on_completion=payload.get("on_run_completed") if cron.thread_id is None else None,
            durability=payload.get("durability"),
            # The creator, as a run of theirs would carry it; no request headers and
            # no request id: a firing has no request (the reference passes none).
            user=firing_user(cron),
            cron_id=cron.cron_id,
        )
        extra = {"event": "cron_fired", "cron_id": cron.cron_id,
                 "thread_id": cron.thread_id}
        try:
            run = await self.runlane.create_run(cron.thread_id, request, owner=cron.owner,
                                                firing=(cron.cron_id, fired_at))
        except AlreadyFired as exc:  # a worker that took it over (or we did) created it
            log.info("%s", exc, extra=extra)
            return None
        except (NotFound, Conflict, BadRequest) as exc:
            # No run for this firing: it is done (if this worker dies first, the
            # worker that takes it over reaches the same answer).
            await self.store.clear_firing(cron.cron_id, fired_at)
            await self._skipped(cron, fired_at, exc, extra)
            return None
        log.info("cron %s fired at %s: run %s", cron.cron_id, fired_at.isoformat(),
                 run.run_id, extra={**extra, "run_id": run.run_id,
                                    "thread_id": run.thread_id})
        return run

    async def _skipped(self, cron: Cron, fired_at: datetime.datetime, exc: Exception,
                       extra: dict[str, Any]) -> None:
        """Log why a firing created no run; a cron whose thread is gone is deleted."""
        if isinstance(exc, NotFound):
            if cron.thread_id is not None and not await self.store.thread_visible(
                    cron.thread_id, owner=cron.owner):
                await self.store.delete(cron.cron_id)
                log.warning("cron %s: its thread %s is gone; cron deleted", cron.cron_id,
                            cron.thread_id, extra=extra)
            else:
                log.warning("cron %s: firing at %s skipped: %s", cron.cron_id,
                            fired_at.isoformat(), exc, extra=extra)
        else:
            log.info("cron %s: firing at %s skipped: %s", cron.cron_id,
                     fired_at.isoformat(), exc, extra=extra)


def firing_user(cron: Cron) -> JSONObject | None:
    """The user a firing's run runs as: whoever created the cron, as authenticated
    then. A cron created before runlane kept that (migration 0008) has its creator's
    identity alone, as the reference server gives every cron's runs."""
    if cron.auth_user is not None:
        return cron.auth_user
    return {"identity": cron.user_id} if cron.user_id is not None else None


def _modes(value: Any) -> list[str]:
    if not value:
        return ["values"]
    modes = [value] if isinstance(value, str) else list(value)
    return list(dict.fromkeys(modes))
