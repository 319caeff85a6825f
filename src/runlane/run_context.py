"""A run's config and context, as the reference server builds them.

At creation (`for_request`, then `with_assistant`): a run gives `context` or
`config.configurable`, not both (400); whichever it gives is mirrored into the other,
so graphs that read either see the same values. The assistant's config is under the
run's (the run's keys win; `configurable` and `metadata` merge key by key), and so
is its context.

At execution (`for_schema`): the context keeps only the keys the graph's context
schema declares (langgraph builds the schema's instance from it, defaults filled
in); keys dropped from a context the caller gave are dropped from the mirrored
`configurable` too. A run with no context at all still gets `{}`, so a dataclass or
pydantic schema becomes an instance of its defaults rather than None."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from langgraph.version import __version__ as _langgraph_version

from runlane import __version__ as runlane_version
from runlane.errors import ConfigurableAndContext

log = logging.getLogger("runlane.executor")

JSON = dict[str, Any]

BOTH_GIVEN = ("Cannot specify both configurable and context. Prefer setting context alone. "
              "Context was introduced in LangGraph 0.6.0 and is the long term planned "
              "replacement for configurable.")


def for_request(config: JSON | None, context: JSON | None) -> tuple[JSON, JSON, bool]:
    """(config, context, context given) of a run request, mirrored into each other."""
    config = dict(config or {})
    context = dict(context or {})
    configurable = dict(config.get("configurable") or {})
    if configurable and context:
        raise ConfigurableAndContext(BOTH_GIVEN)
    if context:
        config["configurable"] = dict(context)
        return config, context, True
    config["configurable"] = configurable
    return config, configurable.copy(), False


def for_assistant(config: JSON | None, context: JSON | None) -> tuple[JSON, JSON]:
    """An assistant's (config, context) as stored: one mirrors the other (400 when
    both are given), as the reference keeps them."""
    config = dict(config or {})
    configurable = config.get("configurable")
    if configurable and context:
        raise ConfigurableAndContext(BOTH_GIVEN)
    if configurable:
        return config, dict(configurable)
    if context:
        config["configurable"] = dict(context)
    return config, dict(context or {})


def for_assistant_patch(config: JSON | None,
                        context: JSON | None) -> tuple[JSON | None, JSON | None]:
    """An assistant update's (config, context), None for one left as it is: mirrored
    as at creation (the reference replaces the stored config with the mirrored one)."""
    if config is None and context is None:
        return None, None
    config, mirrored = for_assistant(config, context)
    return (config or None), (mirrored if context is not None or mirrored else None)


def with_assistant(assistant_config: JSON | None, assistant_context: JSON | None,
                   config: JSON, context: JSON) -> tuple[JSON, JSON]:
    """The run's config and context over its assistant's."""
    base = assistant_config or {}
    merged = {**base, **config}
    for key in ("configurable", "metadata"):
        combined = {**(base.get(key) or {}), **(config.get(key) or {})}
        if combined or key == "configurable":
            merged[key] = combined
    return merged, {**(assistant_context or {}), **context}


def for_schema(context: JSON | None, schema: Mapping[str, Any] | None,
               configurable: JSON, given: bool) -> JSON:
    """The context a graph with this JSON context schema receives. Drops from
    `configurable` (in place) what it drops from a context the caller gave."""
    context = dict(context or {})
    properties = (schema or {}).get("properties")
    if not context or not properties:
        return context
    kept = {k: v for k, v in context.items() if k in properties}
    for key in context.keys() - kept.keys():
        log.debug("context key %r is not in the graph's context schema: dropped", key)
        if given and configurable.get(key) == context[key]:
            configurable.pop(key, None)
    return kept


# In a run's config["configurable"]: the run was started by the v2 streaming protocol
# (service/protocol_commands.py) and streams langgraph's protocol events (the
# reference's marker, same name).
PROTOCOL_V2_MARKER = "__event_streaming_v2"

# What the reference adds to every run's metadata (nodes, callbacks and checkpoints
# see it): the serving server, as it names itself. The attempt is always the first:
# runlane does not retry a run.
SERVER_METADATA: JSON = {
    "run_attempt": 1,
    "langgraph_version": _langgraph_version,
    "langgraph_api_version": runlane_version,
    "langgraph_plan": "developer",
    "langgraph_host": "self-hosted",
    "langgraph_api_url": os.environ.get("LANGGRAPH_API_URL"),
}


class RunUser(Mapping[str, Any]):
    """The authenticated user a run was created by, rebuilt from what the run
    stored (`langgraph_auth_user`), for the graph's config and a factory's
    ServerRuntime: it has langgraph_sdk's BaseUser properties and reads as a dict."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = dict(fields)

    @property
    def identity(self) -> str:
        return str(self._fields.get("identity", ""))

    @property
    def display_name(self) -> str:
        return str(self._fields.get("display_name") or self.identity)

    @property
    def permissions(self) -> list[str]:
        return list(self._fields.get("permissions") or [])

    @property
    def is_authenticated(self) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"RunUser({self.identity!r})"


def auth_configurable(user: Mapping[str, Any] | None) -> JSON:
    """The identity keys the reference puts in every run's `configurable`."""
    if user is None:
        return {"langgraph_auth_user": None, "langgraph_auth_user_id": "",
                "langgraph_auth_permissions": []}
    fields = dict(user)
    return {"langgraph_auth_user": fields,
            "langgraph_auth_user_id": str(fields.get("identity", "")),
            "langgraph_auth_permissions": list(fields.get("permissions") or [])}
