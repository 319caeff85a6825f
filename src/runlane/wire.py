"""The JSON shape of each resource, as the LangGraph server API shows it: built from
the records (records.py) in this one place, for the HTTP routes and for the webhook
sender alike. Key order is part of the shape (clients and the compat suite compare
bodies), and enum fields go out as their plain values.
"""

from __future__ import annotations

from runlane.records import Assistant, AssistantVersion, Cron, Run, Thread
from runlane.serde import JSONObject


def run_body(run: Run) -> JSONObject:
    cancel_action = run.cancel_action
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "status": run.status.value,
        "metadata": run.metadata,
        "multitask_strategy": run.multitask_strategy,
        "kwargs": run.kwargs,
        "cancel_action": None if cancel_action is None else cancel_action.value,
        "cancel_reason": run.cancel_reason,
        "stop_reason": run.stop_reason,
        "error": run.error,
    }


def thread_body(thread: Thread) -> JSONObject:
    return {
        "thread_id": thread.thread_id,
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
        "metadata": thread.metadata,
        "status": thread.status.value,
        "config": thread.config or {},
        "values": thread.values,
        "interrupts": thread.interrupts or {},
    }


def assistant_body(assistant: Assistant) -> JSONObject:
    return {
        "assistant_id": assistant.assistant_id,
        "graph_id": assistant.graph_id,
        "config": assistant.config,
        "context": assistant.context,
        "metadata": assistant.metadata,
        "name": assistant.name,
        "description": assistant.description,
        "version": assistant.version,
        "created_at": assistant.created_at,
        "updated_at": assistant.updated_at,
    }


def version_body(version: AssistantVersion) -> JSONObject:
    """One stored version of an assistant (AssistantVersion: no updated_at)."""
    return {
        "assistant_id": version.assistant_id,
        "graph_id": version.graph_id,
        "config": version.config,
        "context": version.context,
        "metadata": version.metadata,
        "name": version.name,
        "description": version.description,
        "version": version.version,
        "created_at": version.created_at,
    }


def cron_body(cron: Cron) -> JSONObject:
    payload = cron.payload
    return {
        "cron_id": cron.cron_id,
        "assistant_id": cron.assistant_id,
        "thread_id": cron.thread_id,
        "on_run_completed": payload.get("on_run_completed") if cron.thread_id is None else None,
        "end_time": cron.end_time,
        "schedule": cron.schedule,
        "timezone": payload.get("timezone"),
        "created_at": cron.created_at,
        "updated_at": cron.updated_at,
        "payload": payload,
        "user_id": cron.user_id,
        "next_run_date": cron.next_run_date,
        "metadata": cron.metadata,
        "enabled": cron.enabled,
    }
