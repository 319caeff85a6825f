"""The `debug` stream mode's checkpoint events as the reference server shapes them.

langgraph's debug checkpoint payload carries `config` and `parent_config` (runnable
configs). Clients written against the reference read the checkpoint they point at
from `checkpoint` and `parent_checkpoint` instead ({thread_id, checkpoint_ns,
checkpoint_id}, as the thread state's `checkpoint` field), and a task that runs a
subgraph names that subgraph's checkpoint as `checkpoint` rather than `state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def checkpoint_of(config: Any) -> dict[str, Any] | None:
    """The checkpoint a runnable config points at, or None when it names none."""
    configurable = config.get("configurable") if isinstance(config, Mapping) else None
    if not configurable or not configurable.get("thread_id") or not configurable.get(
            "checkpoint_id"):
        return None
    checkpoint: dict[str, Any] = {"checkpoint_id": configurable["checkpoint_id"],
                                  "thread_id": configurable["thread_id"]}
    if "checkpoint_ns" in configurable:
        checkpoint["checkpoint_ns"] = configurable["checkpoint_ns"] or ""
    if "checkpoint_map" in configurable:
        checkpoint["checkpoint_map"] = configurable["checkpoint_map"]
    return checkpoint


def _task(task: Any) -> Any:
    state = task.get("state") if isinstance(task, Mapping) else None
    configurable = state.get("configurable") if isinstance(state, Mapping) else None
    if not configurable:
        return task
    # A subgraph's task: its state is the config of the subgraph's checkpoint.
    shaped = {key: value for key, value in task.items() if key != "state"}
    shaped["checkpoint"] = configurable
    return shaped


def debug_event(data: Any) -> Any:
    """A debug event as the reference sends it (only checkpoint events change)."""
    if not isinstance(data, Mapping) or data.get("type") != "checkpoint":
        return data
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        return data
    shaped = {
        **payload,
        "checkpoint": checkpoint_of(payload.get("config")),
        "parent_checkpoint": checkpoint_of(payload.get("parent_config")),
        "tasks": [_task(task) for task in payload.get("tasks") or ()],
    }
    return {**data, "payload": shaped}
