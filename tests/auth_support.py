"""Secured servers for the auth tests: one per auth mode (API keys, JWT, the custom
langgraph.json handler in tests/auth_graphs), each on SQLite or a 3-worker
PostgreSQL cluster, and each user's credentials for it."""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import ServerProcess

AUTH_CONFIG = Path(__file__).parent / "auth_graphs" / "langgraph.json"
USERS = ("alice", "bob", "carol")
API_KEYS = {user: f"{user}-key-{'0123456789abcdef' * 2}" for user in USERS}
CUSTOM_TOKENS = {user: f"{user}-token-0123456789abcdef" for user in USERS}
JWT_ISSUER = "https://issuer.runlane.test"
JWT_AUDIENCE = "runlane-tests"
# The operator's token for GET /metrics (closed with auth on without it).
METRICS_TOKEN = "metrics-token-0123456789abcdef"
METRICS_HEADERS = {"authorization": f"Bearer {METRICS_TOKEN}"}


class Secured:
    """A running secured server and how each user authenticates to it."""

    def __init__(self, mode: str, server: Any, headers_for: Callable[[str], dict[str, str]],
                 signing_key: Any = None) -> None:
        self.mode = mode
        self.server = server
        self.url = server.url
        self.urls: list[str] = getattr(server, "urls", [server.url])
        self.headers_for = headers_for
        self.signing_key = signing_key

    def http(self, user: str | None) -> httpx.Client:
        """A client as `user` (None: no credentials); on a cluster, each request goes
        to the next worker, so every worker's paths are crossed."""
        transport = None
        if len(self.urls) > 1:
            from cluster import SyncRoundRobinTransport

            transport = SyncRoundRobinTransport(self.urls)
        headers = self.headers_for(user) if user else {}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers, transport=transport)

    def sdk(self, user: str) -> Any:
        from langgraph_sdk import get_client

        headers = dict(self.headers_for(user))
        api_key = headers.pop("x-api-key", None)  # the SDK sends its api_key as X-Api-Key
        client = get_client(url=self.url, timeout=60, api_key=api_key, headers=headers)
        if len(self.urls) > 1:
            from cluster import RoundRobinTransport

            client.http.client._transport = RoundRobinTransport(self.urls)
        return client


def make_token(key: Any, sub: str, **claims: Any) -> str:
    now = datetime.datetime.now(datetime.UTC)
    body = {"sub": sub, "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now,
            "exp": now + datetime.timedelta(minutes=30), **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256")


def _rsa_key(workdir: Path) -> tuple[Any, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = workdir / "jwt-public.pem"
    pem.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, pem


def server_args(mode: str, workdir: Path) -> tuple[list[str], Callable[[str], dict[str, str]], Any]:
    """`runlane serve` arguments for `mode`, and the headers each user sends."""
    if mode == "api-key":
        keys = workdir / "api-keys"
        keys.write_text("# identity=key\n" + "\n".join(f"{u}={k}" for u, k in API_KEYS.items()))
        return (["--auth", "api-key", "--api-keys-file", str(keys)],
                lambda user: {"x-api-key": API_KEYS[user]}, None)
    if mode == "jwt":
        key, pem = _rsa_key(workdir)
        return (["--auth", "jwt", "--jwt-public-key", str(pem), "--jwt-algorithms", "RS256",
                 "--jwt-issuer", JWT_ISSUER, "--jwt-audience", JWT_AUDIENCE],
                lambda user: {"authorization": f"Bearer {make_token(key, user)}"}, key)
    if mode == "custom":
        return (["--config", str(AUTH_CONFIG)],
                lambda user: {"authorization": f"Bearer {CUSTOM_TOKENS[user]}"}, None)
    raise ValueError(mode)


@contextmanager
def secured_server(mode: str, backend: str,
                   env: dict[str, str] | None = None) -> Iterator[Secured]:
    """`env`: more RUNLANE_* settings. The server's `metrics_headers` are what
    sse_gauge sends to read /metrics."""
    env = {"RUNLANE_METRICS_TOKEN": METRICS_TOKEN, **(env or {})}
    with tempfile.TemporaryDirectory(prefix=f"runlane-auth-{mode}-") as tmp:
        workdir = Path(tmp)
        args, headers_for, key = server_args(mode, workdir)
        if backend == "sqlite":
            proc = ServerProcess(workdir / "server", *args, env=env)
            proc.metrics_headers = METRICS_HEADERS  # type: ignore[attr-defined]
            try:  # stopped also when it fails to start
                yield Secured(mode, proc.start(), headers_for, key)
            finally:
                proc.stop()
            return
        from cluster import Cluster, require_services

        require_services()
        cluster = Cluster(workdir / "cluster", 3, *args, env=env)
        cluster.metrics_headers = METRICS_HEADERS  # type: ignore[attr-defined]
        try:  # a worker that started is stopped even if another did not
            yield Secured(mode, cluster.start(), headers_for, key)
        finally:
            cluster.close()
