"""Loading the graphs a project's `langgraph.json` names, as the LangGraph CLI reads it."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from runlane.errors import ConfigError
from runlane.graph_factories import ServedGraph
from runlane.http_config import CorsConfig, HttpConfig, parse_http
from runlane.project_imports import import_location
from runlane.store_config import (
    StoreConfig,
    ThreadTTLConfig,
    load_embeddings,
    parse_checkpointer,
    parse_store,
)
from runlane.webhook_policy import WebhookConfig, parse_webhooks

# The reference server derives each graph's default assistant id this way; keeping
# it lets clients that hard-code those ids work unchanged.
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ProjectConfig:
    path: Path
    graphs: dict[str, str]  # graph id -> "path/to/file.py:attribute" or "module:attribute"
    env: dict[str, str]
    dependencies: list[str]
    # The "auth" entry ({"path": "./auth.py:auth"}), checked when auth is set up.
    auth: Any = None
    # The "http" entry (runlane.http_config), checked here: CORS, a custom app, route
    # groups turned off, a mount prefix, headers for runs and the access log.
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
    # The "webhooks" entry (runlane.webhook_policy): where webhooks may go, signing.
    webhooks: WebhookConfig = dataclasses.field(default_factory=WebhookConfig)
    # The "store" entry (runlane.store_config): semantic index, item TTL defaults; its
    # embeddings are loaded by load_all.
    store: StoreConfig = dataclasses.field(default_factory=StoreConfig)
    # The "checkpointer" entry's `ttl`: new threads' default TTL, the sweep interval.
    thread_ttl: ThreadTTLConfig | None = None

    @property
    def cors(self) -> CorsConfig:
        return self.http.cors


@functools.lru_cache(maxsize=1024)
def default_assistant_id(graph_id: str) -> str:
    # Cached: it is computed for every run created with a graph id (a SHA-1 each).
    return str(uuid.uuid5(NAMESPACE_GRAPH, graph_id))


def read_config(path: str | os.PathLike[str]) -> ProjectConfig:
    config_path = Path(path).resolve()
    if not config_path.is_file():
        raise ConfigError(f"{config_path}: no such file (pass --config path/to/langgraph.json)")
    try:
        raw = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: expected a JSON object")
    graphs = raw.get("graphs")
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError(
            f"{config_path}: 'graphs' must be an object such as "
            '{"agent": "./graph.py:graph"}'
        )
    for graph_id, entry in graphs.items():
        # either "path:attribute" or the {"path": "...", "description": ...} form
        spec = entry.get("path") if isinstance(entry, dict) else entry
        if not isinstance(spec, str) or ":" not in spec:
            raise ConfigError(
                f"{config_path}: graph {graph_id!r} must be 'path/to/file.py:attribute', "
                f"got {spec!r}"
            )
        graphs[graph_id] = spec
    env = raw.get("env") or {}
    if isinstance(env, str):
        env = _read_env_file(config_path.parent / env)
    if not isinstance(env, dict):
        raise ConfigError(f"{config_path}: 'env' must be an object or the path of a .env file")
    _refuse_unsupported(raw, config_path)
    deps = raw.get("dependencies") or []
    if not isinstance(deps, list):
        raise ConfigError(f"{config_path}: 'dependencies' must be a list")
    return ProjectConfig(config_path, dict(graphs), {k: str(v) for k, v in env.items()}, deps,
                         raw.get("auth"), parse_http(raw.get("http"), str(config_path)),
                         parse_webhooks(raw.get("webhooks"), str(config_path)),
                         parse_store(raw.get("store"), str(config_path)),
                         parse_checkpointer(raw.get("checkpointer"), str(config_path)))


# Keys of the reference's langgraph.json that would claim what runlane does not do:
# start-up stops rather than serve without it (docs/configuration.md says why).
_REFUSED = {
    ("encryption",): "at-rest encryption handlers are a LangSmith Deployment feature "
                     "runlane does not have; remove 'encryption'",
    ("store", "path"): "runlane serves its own store (the API, the graphs and the TTL "
                       "sweeper share it); remove 'store.path'",
    ("checkpointer", "path"): "runlane's run contract is built on its own checkpointer; "
                              "remove 'checkpointer.path'",
}


def _refuse_unsupported(raw: dict[str, Any], config_path: Path) -> None:
    for keys, why in _REFUSED.items():
        value: Any = raw
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            raise ConfigError(f"{config_path}: {'.'.join(keys)} is not supported: {why} "
                              "(docs/configuration.md)")


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ConfigError(f"env file {path} named in langgraph.json does not exist")
    env: dict[str, str] = {}
    for raw_line in path.read_text().splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        env[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return env


def apply_project(config: ProjectConfig) -> None:
    """Environment and import paths, as `langgraph dev` sets them up."""
    for key, value in config.env.items():
        os.environ.setdefault(key, value)
    base = config.path.parent
    for dep in config.dependencies:
        if isinstance(dep, str) and dep.startswith((".", "/")):
            dep_path = str((base / dep).resolve())
            if dep_path not in sys.path:
                sys.path.insert(0, dep_path)
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))


@dataclasses.dataclass
class LoadedGraph:
    graph_id: str
    graph: ServedGraph


def load_graph(config: ProjectConfig, graph_id: str) -> LoadedGraph:
    spec = config.graphs[graph_id]
    location, _, attribute = spec.rpartition(":")
    where = f"graph {graph_id!r} ({spec})"
    module = import_location(location, config.path.parent, where,
                             f"runlane_graph_{graph_id}")
    if not hasattr(module, attribute):
        found = sorted(name for name, value in vars(module).items()
                       if isinstance(value, Pregel | StateGraph) and not name.startswith("_"))
        hint = f" (graphs it defines: {', '.join(found)})" if found else ""
        raise ConfigError(f"{where}: {location} has no attribute {attribute!r}{hint}")
    obj: Any = getattr(module, attribute)
    served = _resolve(graph_id, obj, where)
    transformers = _stream_transformers(module, where)
    if transformers is not None:
        served = dataclasses.replace(served, stream_transformers=transformers)
    return LoadedGraph(graph_id, served)


def _stream_transformers(module: Any, where: str) -> Any:
    """The module's optional `stream_transformers`, as the reference reads it: a zero-arg
    callable returning a fresh list of StreamTransformer factories (or instances) for
    each v2 protocol run. Anything else is ignored with a warning, not refused: the
    reference serves the graph without it (docs/v2-streaming.md)."""
    value = getattr(module, "stream_transformers", None)
    if value is None:
        return None
    if not callable(value):
        log.warning("%s: the module's `stream_transformers` is a %s, not a callable; "
                    "ignored (define `def stream_transformers(): return [...]`, a fresh "
                    "list of StreamTransformer factories per call)", where,
                    type(value).__name__)
        return None
    return value


def _resolve(graph_id: str, obj: Any, where: str) -> ServedGraph:
    """A compiled graph is served as it is and a StateGraph compiled once; a factory is
    only checked here (its parameters), and called each time its graph is needed."""
    if isinstance(obj, Pregel):
        return ServedGraph.plain(graph_id, obj)
    if isinstance(obj, StateGraph):
        return ServedGraph.plain(graph_id, obj.compile())
    if callable(obj):
        return ServedGraph.of_factory(graph_id, obj, where)
    raise ConfigError(
        f"{where}: {type(obj).__name__} is not a graph (expected a compiled graph, a "
        "StateGraph, or a function returning one)"
    )


def load_all(config: ProjectConfig) -> dict[str, LoadedGraph]:
    """The project's graphs; also resolves `store.index.embed` into `config.store`
    (after the project's import paths are set up, as the graphs need them too)."""
    apply_project(config)
    config.store = load_embeddings(config.store, config.path.parent)
    return {graph_id: load_graph(config, graph_id) for graph_id in config.graphs}
