"""Settings from flags and RUNLANE_* environment variables."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from runlane.store.database import sqlite_file


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


SQLITE_MAX_CONCURRENCY = 1000
CLUSTER_MAX_CONCURRENCY = 64


@dataclasses.dataclass
class Settings:
    config: Path = Path("langgraph.json")
    host: str = "127.0.0.1"
    port: int = 2024
    database_url: str | None = None
    # Runs executing at once in this worker; None: the backend's default
    # (resolved_max_concurrency).
    max_concurrency: int | None = None
    cancel_grace: float = 5.0
    # A run stopped while a node of it still executes in a thread (a synchronous node,
    # which a cancel cannot stop): its thread's next run waits for the node to return,
    # at most this many seconds (0: not at all). See docs/run-contract.md.
    abandoned_node_grace: float = 5.0
    max_body_bytes: int = 16 * 1024 * 1024
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line
    # SIGTERM: how long active runs may go on before they are interrupted (shutdown).
    shutdown_grace: float = 10.0
    # HTTP: how long an idle keep-alive connection stays open for its next request
    # (seconds). Above the idle timeouts of the pools and proxies in front of it (an
    # HTTP client's pool, a load balancer's 60 s), so that a connection is never closed
    # by the server just as its client reuses it; uvicorn's own default is 5.
    keep_alive_timeout: float = 75.0
    # HTTP: connections the kernel queues for this process while it is busy (the
    # listen backlog; Linux caps it at net.core.somaxconn). A burst of new clients
    # beyond it is refused by the kernel (reset), not queued.
    backlog: int = 4096
    # Scale-out (PostgreSQL): how long a worker's lease on a run lasts without renewal,
    # and how long after it ends another worker finishes the run.
    lease_seconds: float = 6.0
    lease_grace: float = 2.0
    worker_name: str | None = None
    redis_url: str | None = None
    # Redis connections per worker (docs/scale-out.md): writes (event appends, ends,
    # state checks) and followers' replay reads; plus the tail's one blocking read.
    redis_max_connections: int = 32
    redis_max_read_connections: int = 32
    # Webhooks: seconds per attempt, attempts in all, first retry delay (doubling).
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 6
    webhook_backoff: float = 1.0
    # Webhook signing key (X-Runlane-Signature), and the URL policy's overrides of
    # langgraph.json `webhooks.url` (None: as configured there; see webhook_policy).
    webhook_secret: str | None = None
    webhook_allowed_domains: str | None = None  # "hooks.example.com,*.example.org"
    webhook_allowed_ports: str | None = None  # "443,8443"
    webhook_require_https: bool | None = None
    webhook_disable_loopback: bool | None = None
    webhook_disable_private_ips: bool | None = None
    webhook_max_url_length: int | None = None
    # PostgreSQL connections per worker (docs/scale-out.md): database threads, the
    # checkpointer's pool, the item store's pool; plus one LISTEN connection.
    db_pool_size: int = 3
    checkpoint_pool_size: int = 2
    item_pool_size: int = 1
    # How long a finished run's events stay replayable in this process when it was not
    # created with stream_resumable=true (best effort; resumable ones: an hour).
    stream_retention: float = 120.0
    # wait and join: while the run goes on, a newline (leading whitespace of the JSON
    # answer) every this many seconds, so proxies do not cut an idle response.
    wait_keepalive: float = 5.0
    # How long an Idempotency-Key names what its request created (seconds; 24 h).
    idempotency_ttl: float = 24 * 3600.0
    # Thread streams wait for a notification of the thread's next run; they read the
    # store on their own only this often, in case one was lost (seconds).
    thread_stream_poll: float = 5.0
    # Authentication (see runlane.api.auth): none, api-key, jwt or custom; None: custom
    # when langgraph.json has an "auth" entry, else none.
    auth: str | None = None
    api_keys: str | None = None  # "alice=KEY1,bob=KEY2"
    api_keys_file: str | None = None  # one identity=key per line
    jwt_secret: str | None = None
    jwt_public_key: str | None = None  # PEM text or the path of a PEM file
    jwt_algorithms: str | None = None  # comma-separated; default HS256 / RS256,ES256
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_identity_claim: str = "sub"
    # With auth on: whether a caller may choose the id of a new thread or assistant
    # ("allow", as the reference server; an id someone else uses answers 409) or not
    # ("refuse": 422 for any id that is not already the caller's own, so nothing tells
    # a free id from another owner's). See docs/auth.md.
    chosen_ids: str = "allow"
    # The bearer token GET /metrics requires (with auth on, /metrics is closed
    # without it: its store-wide figures count every owner's runs).
    metrics_token: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {}
        if "RUNLANE_CONFIG" in env:
            values["config"] = Path(env["RUNLANE_CONFIG"])
        for name, cast in (("host", str), ("port", int), ("database_url", str),
                           ("redis_url", str), ("lease_seconds", float), ("lease_grace", float),
                           ("redis_max_connections", int), ("redis_max_read_connections", int),
                           ("worker_name", str),
                           ("max_concurrency", int), ("cancel_grace", float),
                           ("abandoned_node_grace", float),
                           ("max_body_bytes", int), ("log_level", str),
                           ("log_format", str), ("shutdown_grace", float),
                           ("keep_alive_timeout", float), ("backlog", int),
                           ("webhook_timeout", float), ("webhook_max_attempts", int),
                           ("webhook_backoff", float), ("stream_retention", float),
                           ("webhook_secret", str), ("webhook_allowed_domains", str),
                           ("webhook_allowed_ports", str), ("webhook_require_https", _bool),
                           ("webhook_disable_loopback", _bool),
                           ("webhook_disable_private_ips", _bool),
                           ("webhook_max_url_length", int), ("db_pool_size", int),
                           ("checkpoint_pool_size", int), ("item_pool_size", int),
                           ("wait_keepalive", float), ("idempotency_ttl", float),
                           ("thread_stream_poll", float),
                           ("auth", str), ("api_keys", str), ("api_keys_file", str),
                           ("jwt_secret", str), ("jwt_public_key", str),
                           ("jwt_algorithms", str), ("jwt_issuer", str),
                           ("jwt_audience", str), ("jwt_identity_claim", str),
                           ("chosen_ids", str), ("metrics_token", str)):
            key = f"RUNLANE_{name.upper()}"
            if key in env:
                values[name] = cast(env[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]  # each value cast to its field's type

    def redis_pool_problems(self) -> list[str]:
        """What is wrong with the Redis pool sizes (scale-out), in words."""
        return [f"RUNLANE_{name.upper()}: {getattr(self, name)} is not a positive number "
                "of connections (default 32)"
                for name in ("redis_max_connections", "redis_max_read_connections")
                if getattr(self, name) < 1]

    def webhook_overrides(self) -> dict[str, object]:
        """The RUNLANE_WEBHOOK_* policy settings, as webhook_policy.override takes them."""
        return {"secret": self.webhook_secret,
                "allowed_domains": self.webhook_allowed_domains,
                "allowed_ports": self.webhook_allowed_ports,
                "require_https": self.webhook_require_https,
                "disable_loopback": self.webhook_disable_loopback,
                "disable_private_ips": self.webhook_disable_private_ips,
                "max_url_length": self.webhook_max_url_length}

    def connections_per_worker(self) -> int:
        """The most PostgreSQL connections one worker holds while serving."""
        return self.db_pool_size + self.checkpoint_pool_size + self.item_pool_size + 1

    def to_env(self) -> dict[str, str]:
        """These settings as RUNLANE_* variables (for worker processes)."""
        env = {"RUNLANE_CONFIG": str(self.config.resolve()),
               "RUNLANE_DATABASE_URL": self.resolved_database_url()}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name not in ("config", "database_url") and value is not None:
                env[f"RUNLANE_{field.name.upper()}"] = str(value)
        return env

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        directory = self.config.resolve().parent / ".runlane"
        return f"sqlite:///{directory / 'runlane.sqlite'}"

    def resolved_max_concurrency(self) -> int:
        """The limit given, else the backend's default. One SQLite process: 1,000. Runs
        waiting on a model (most of an agent run's life) cost no CPU and about
        100-300 KB each; what bounds a process is its CPU per streamed token and its
        memory, not how many runs are open, and a run queued as pending there only
        waits, nothing else can take it (docs/performance.md: 64 gave a 200-client
        agent load an 18 s median first token). PostgreSQL: 64, so that a burst of
        runs is spread over the workers' claims instead of one worker claiming it all."""
        if self.max_concurrency is not None:
            return self.max_concurrency
        sqlite = self.resolved_database_url().startswith("sqlite")
        return SQLITE_MAX_CONCURRENCY if sqlite else CLUSTER_MAX_CONCURRENCY

    def checkpoint_path(self) -> str:
        """Checkpoints go in a file beside the database: `<name>-checkpoints.sqlite`."""
        path = sqlite_file(self.resolved_database_url())
        if path is None or path == ":memory:":
            return ":memory:"
        return str(Path(path).with_name(Path(path).stem + "-checkpoints.sqlite"))
