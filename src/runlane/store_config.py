"""langgraph.json's `store` and `checkpointer` entries, as the reference server reads
them, checked at start-up so a mistake is one line saying what to fix:

    "store": {
      "index": {"dims": 16, "embed": "./embed.py:embed", "fields": ["text"]},
      "ttl": {"refresh_on_read": true, "default_ttl": 60, "sweep_interval_minutes": 5}
    },
    "checkpointer": {
      "ttl": {"strategy": "keep_latest", "default_ttl": 43200, "sweep_interval_minutes": 10}
    }

`store.index` turns on semantic search over store items (langgraph's own stores do the
embedding and ranking: store/items.py); `embed` names a function or a LangChain
`Embeddings` in a Python file (`"./embed.py:embed"`, relative to langgraph.json), or a
provider (`"openai:text-embedding-3-small"`, through LangChain's `init_embeddings`).
`store.ttl` is the items' default TTL (minutes), refresh-on-read and sweep interval.
`checkpointer.ttl` is the default TTL of new threads (`{"strategy", "ttl"}` as a client
would set it per thread) and how often the thread sweeper looks at least.

The other keys of both entries (a custom store or checkpointer `path`, `serde` ...) are
not runlane's: they are logged as ignored, not refused.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runlane.errors import ConfigError, EmbeddingMismatch
from runlane.project_imports import import_location

log = logging.getLogger("runlane")

# A century of minutes: beyond it an expiry timestamp overflows (as api/models.py).
MAX_MINUTES = 100 * 365 * 24 * 60
THREAD_TTL_STRATEGIES = ("delete", "keep_latest")
# Where runlane's sweepers look at least this often without a setting (seconds).
DEFAULT_ITEM_SWEEP_SECONDS = 5.0
DEFAULT_THREAD_SWEEP_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """`store.index`: `embed` as written; `embeddings` once resolved (load_embeddings)."""

    dims: int
    embed: str
    fields: tuple[str, ...] = ("$",)
    embeddings: Any = None  # a LangChain Embeddings, after load_embeddings

    def for_langgraph(self) -> dict[str, Any]:
        """The IndexConfig langgraph's stores take."""
        assert self.embeddings is not None, "load_embeddings() first"
        return {"dims": self.dims, "embed": self.embeddings, "fields": list(self.fields)}


@dataclasses.dataclass(frozen=True)
class ItemTTL:
    """`store.ttl` (minutes)."""

    refresh_on_read: bool = True
    default_ttl: float | None = None
    sweep_interval_minutes: float | None = None

    @property
    def sweep_seconds(self) -> float:
        if self.sweep_interval_minutes is None:
            return DEFAULT_ITEM_SWEEP_SECONDS
        return self.sweep_interval_minutes * 60


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    index: IndexConfig | None = None
    ttl: ItemTTL = dataclasses.field(default_factory=ItemTTL)


@dataclasses.dataclass(frozen=True)
class ThreadTTLConfig:
    """`checkpointer.ttl` (minutes)."""

    strategy: str = "delete"
    default_ttl: float | None = None
    sweep_interval_minutes: float | None = None
    sweep_limit: int = 100

    def default(self) -> dict[str, Any] | None:
        """The TTL a new thread gets when its creator gives none, in the form a client
        sends (api/models.ThreadTTL, stored in `threads.ttl`); None: no default."""
        if self.default_ttl is None:
            return None
        return {"strategy": self.strategy, "ttl": self.default_ttl}

    @property
    def sweep_seconds(self) -> float:
        if self.sweep_interval_minutes is None:
            return DEFAULT_THREAD_SWEEP_SECONDS
        return self.sweep_interval_minutes * 60


# ------------------------------------------------------------------ parsing


def _object(raw: Any, where: str, example: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object such as {example}, got {raw!r}")
    return raw


def _unknown(raw: dict[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"accepted: {', '.join(known)}")


def _minutes(raw: dict[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 0 < value <= MAX_MINUTES):
        raise ConfigError(f"{where}.{key} must be a positive number of minutes "
                          f"(at most {MAX_MINUTES}), got {value!r}")
    return float(value)


def _positive_int(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where} must be a positive integer ({what}), got {value!r}")
    return value


def parse_store(raw: Any, where: str) -> StoreConfig:
    """langgraph.json's `store` (None: absent). `where` names the file in errors."""
    if raw is None:
        return StoreConfig()
    raw = _object(raw, f"{where}: 'store'", '{"index": {"dims": 1536, "embed": '
                  '"openai:text-embedding-3-small"}}')
    ignored = sorted(set(raw) - {"index", "ttl"})
    if ignored:
        # A custom store (`path`) is the reference's; runlane serves its own.
        log.warning("%s: store.%s not supported by runlane: ignored (store.index and "
                    "store.ttl are read)", where, ", store.".join(ignored))
    index = None if raw.get("index") is None else _parse_index(raw["index"], where)
    ttl = ItemTTL()
    if raw.get("ttl") is not None:
        spec = _object(raw["ttl"], f"{where}: store.ttl",
                       '{"default_ttl": 60, "refresh_on_read": true}')
        at = f"{where}: store.ttl"
        _unknown(spec, ("refresh_on_read", "default_ttl", "sweep_interval_minutes"), at)
        refresh = spec.get("refresh_on_read", True)
        if not isinstance(refresh, bool):
            raise ConfigError(f"{at}.refresh_on_read must be true or false, got {refresh!r}")
        ttl = ItemTTL(refresh, _minutes(spec, "default_ttl", at),
                      _minutes(spec, "sweep_interval_minutes", at))
    return StoreConfig(index, ttl)


def _parse_index(raw: Any, where: str) -> IndexConfig:
    at = f"{where}: store.index"
    spec = _object(raw, at, '{"dims": 1536, "embed": "openai:text-embedding-3-small"}')
    _unknown(spec, ("dims", "embed", "fields"), at)
    if "dims" not in spec or "embed" not in spec:
        raise ConfigError(f"{at} needs both 'dims' (the length of the embedding vectors) "
                          "and 'embed' (\"./embed.py:function\" or a provider such as "
                          "\"openai:text-embedding-3-small\")")
    dims = _positive_int(spec["dims"], f"{at}.dims",
                         "the length of the embedding vectors, e.g. 1536")
    embed = spec["embed"]
    if not isinstance(embed, str) or ":" not in embed or not embed.strip():
        raise ConfigError(f"{at}.embed must be \"path/to/file.py:function\" or a provider "
                          f"string such as \"openai:text-embedding-3-small\", got {embed!r}")
    fields = spec.get("fields")
    if fields is None:
        fields = ["$"]
    if (not isinstance(fields, list) or not fields
            or not all(isinstance(f, str) and f.strip() for f in fields)):
        raise ConfigError(f"{at}.fields must be a non-empty list of JSON paths into the "
                          f"item's value (e.g. [\"text\", \"meta.title\"]; [\"$\"] is the "
                          f"whole value), got {fields!r}")
    from langgraph.store.base import tokenize_path

    for field in fields:
        if not tokenize_path(field):
            raise ConfigError(f"{at}.fields: {field!r} is not a path into the value "
                              "(e.g. \"text\", \"meta.title\", \"chapters[*].content\")")
    return IndexConfig(dims, embed, tuple(fields))


def parse_checkpointer(raw: Any, where: str) -> ThreadTTLConfig | None:
    """langgraph.json's `checkpointer` (None: absent): its `ttl`, the threads' defaults."""
    if raw is None:
        return None
    raw = _object(raw, f"{where}: 'checkpointer'",
                  '{"ttl": {"strategy": "delete", "default_ttl": 43200}}')
    backend = raw.get("backend", "default")
    if backend != "default":
        raise ConfigError(f"{where}: checkpointer.backend {backend!r} is not supported by "
                          "runlane: its checkpointer is the server's database (remove "
                          "'backend', or set it to \"default\")")
    ignored = sorted(set(raw) - {"ttl", "backend"})
    if ignored:
        log.warning("%s: checkpointer.%s not supported by runlane: ignored (checkpointer.ttl "
                    "is read)", where, ", checkpointer.".join(ignored))
    if raw.get("ttl") is None:
        return None
    at = f"{where}: checkpointer.ttl"
    spec = _object(raw["ttl"], at, '{"strategy": "delete", "default_ttl": 43200}')
    _unknown(spec, ("strategy", "default_ttl", "sweep_interval_minutes", "sweep_limit"), at)
    strategy = spec.get("strategy", "delete")
    if strategy not in THREAD_TTL_STRATEGIES:
        raise ConfigError(f"{at}.strategy must be one of {', '.join(THREAD_TTL_STRATEGIES)}, "
                          f"got {strategy!r}")
    limit = spec.get("sweep_limit")
    return ThreadTTLConfig(
        strategy, _minutes(spec, "default_ttl", at), _minutes(spec, "sweep_interval_minutes", at),
        100 if limit is None else _positive_int(limit, f"{at}.sweep_limit",
                                                "threads expired per sweep batch"))


# --------------------------------------------------------------- embeddings


def load_embeddings(config: StoreConfig, base: Path) -> StoreConfig:
    """`config` with its index's `embed` resolved to a LangChain `Embeddings`, checking
    that it returns `dims` numbers; files are found relative to `base` (langgraph.json's
    directory). Call after the project's import paths are set up."""
    if config.index is None:
        return config
    embeddings = _resolve(config.index.embed, base, f"store.index.embed {config.index.embed!r}")
    index = dataclasses.replace(config.index,
                                embeddings=_checked_dims(embeddings, config.index.dims))
    return dataclasses.replace(config, index=index)


def _resolve(embed: str, base: Path, where: str) -> Any:
    from langchain_core.embeddings import Embeddings
    from langgraph.store.base import ensure_embeddings

    if ".py:" not in embed:
        return _provider(embed, where)
    location, _, attribute = embed.rpartition(":")
    module = import_location(location, base, where, "runlane_embed")
    if not hasattr(module, attribute):
        found = sorted(n for n, v in vars(module).items()
                       if callable(v) and not n.startswith("_") and not isinstance(v, type))
        hint = f" (functions it defines: {', '.join(found)})" if found else ""
        raise ConfigError(f"{where}: {(base / location).resolve().name} has no attribute "
                          f"{attribute!r}{hint}")
    target = getattr(module, attribute)
    if isinstance(target, Embeddings):
        return target
    if not callable(target):
        raise ConfigError(f"{where}: {attribute} is a {type(target).__name__}, not a function "
                          "taking a list of texts nor a LangChain Embeddings")
    return ensure_embeddings(target)


def _provider(embed: str, where: str) -> Any:
    try:
        from langchain.embeddings import init_embeddings
    except ImportError:
        raise ConfigError(f"{where}: a provider string needs the langchain package "
                          "(pip install 'langchain>=1'), or name a function: "
                          "\"./embed.py:embed\"") from None
    try:
        return init_embeddings(embed)
    except Exception as exc:  # noqa: BLE001 - a provider's own refusal, in its words
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{where}: LangChain cannot load it: {first}") from None


def _checked_dims(embeddings: Any, dims: int) -> Any:
    """`embeddings`, refusing vectors that are not `dims` long with a message naming the
    setting (the databases would fail with their own words, or rank nonsense)."""
    from langchain_core.embeddings import Embeddings

    def check(vectors: list[list[float]]) -> list[list[float]]:
        for vector in vectors:
            if len(vector) != dims:
                raise EmbeddingMismatch(f"langgraph.json store.index.dims is {dims} but the "
                                  f"embedding function returned {len(vector)} numbers: set "
                                  "dims to the model's vector length")
        return vectors

    class DimsChecked(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return check(embeddings.embed_documents(texts))

        def embed_query(self, text: str) -> list[float]:
            return check([embeddings.embed_query(text)])[0]

        async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
            return check(await embeddings.aembed_documents(texts))

        async def aembed_query(self, text: str) -> list[float]:
            return check([await embeddings.aembed_query(text)])[0]

    return DimsChecked()
