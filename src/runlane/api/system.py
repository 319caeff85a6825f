"""Liveness, readiness, metrics and server information."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from fastapi import APIRouter, Request
from starlette.responses import Response

from runlane import __version__
from runlane.api.responses import JSON, error
from runlane.errors import ConfigError
from runlane.observability import metrics

READY_TIMEOUT = 2.0
MIN_METRICS_TOKEN = 16

# The probes: served whatever langgraph.json says (http.disable_meta removes the
# other meta routes, not these: an operator must still see that the server is up).
probes = APIRouter(tags=["system"])
router = APIRouter(tags=["system"])


@probes.get("/ok")
async def ok() -> Response:
    """Liveness: the process serves HTTP. Says nothing about its dependencies."""
    return JSON({"ok": True})


@probes.get("/ready")
async def ready(request: Request) -> Response:
    """Readiness: the database answers a trivial query through the store's database
    thread, Redis answers PING (scale-out only), and the worker is not shutting
    down. 200 when all hold; 503 naming what does not, so a load balancer stops
    sending requests here."""
    svc = request.app.state.runlane
    runtime = request.app.state.runtime

    async def database() -> str | None:
        try:
            await asyncio.wait_for(svc.store.ping(), READY_TIMEOUT)
        except TimeoutError:
            return f"no answer within {READY_TIMEOUT:.0f}s"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready, and says why
            return f"{type(exc).__name__}: {exc}".strip()[:300]
        return None

    async def redis() -> str | None:
        try:
            answered = await asyncio.wait_for(svc.transport.ping(), READY_TIMEOUT)
        except TimeoutError:
            return f"no answer within {READY_TIMEOUT:.0f}s"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready, and says why
            return f"{type(exc).__name__}: {exc}".strip()[:300]
        return None if answered else "PING failed"

    probes = {"database": database()}
    if svc.transport.crosses_workers:  # (Redis, the one transport that does)
        probes["redis"] = redis()
    results = dict(zip(probes, await asyncio.gather(*probes.values()), strict=True))
    if runtime.draining:
        results["worker"] = "shutting down"
    down = [name for name, problem in results.items() if problem is not None]
    checks = {name: problem or "ok" for name, problem in results.items()}
    if down:
        return JSON({"status": "unavailable", "down": down, "checks": checks,
                     "detail": "not ready: " + "; ".join(f"{n}: {checks[n]}" for n in down)},
                    status_code=503)
    return JSON({"status": "ready", "checks": checks})


def check_metrics_token(token: str | None) -> None:
    if token is not None and len(token) < MIN_METRICS_TOKEN:
        raise ConfigError(f"RUNLANE_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} "
                          "characters (a random one: `openssl rand -hex 32`)")


def _metrics_refused(request: Request) -> Response | None:
    """A 401 unless the caller may read the metrics. They count every owner's runs
    (queue depth, transitions, durations), so with auth on they are for the operator
    only: the RUNLANE_METRICS_TOKEN bearer token (Prometheus' `authorization` scrape
    setting), and closed when none is set. With auth off, open unless a token is set."""
    token = request.app.state.settings.metrics_token
    if token is None:
        if not request.app.state.auth_on:
            return None
        return _unauthorized("with auth on, GET /metrics needs the operator's token: start the "
                             "server with RUNLANE_METRICS_TOKEN set and scrape with "
                             "'Authorization: Bearer <token>' (its figures count every "
                             "owner's runs, so no user's credentials open it)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # Digests, so the comparison takes the same time whatever the length given.
    if scheme.lower() == "bearer" and hmac.compare_digest(
            hashlib.sha256(given.strip().encode()).digest(),
            hashlib.sha256(token.encode()).digest()):
        return None
    return _unauthorized("GET /metrics needs 'Authorization: Bearer <RUNLANE_METRICS_TOKEN>'")


def _unauthorized(detail: str) -> Response:
    response = error(401, detail)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format, this worker's series (see runlane.observability.metrics)."""
    refused = _metrics_refused(request)
    if refused is not None:
        return refused
    body, content_type = await metrics.render(request.app.state.runlane.store)
    return Response(body, media_type=content_type)


@router.get("/info")
async def info(request: Request) -> Response:
    """The reference server's fields (UIs read `flags` to decide what to show), with
    runlane's values, then runlane's own (`server`, `graphs`, `active_runs`). Open
    to anyone: with auth on, `active_runs` (this worker's runs, every owner's) is left
    out, so it tells nobody about other owners' runs."""
    svc = request.app.state.runlane
    body = {
        "version": __version__,
        "langgraph_py_version": _langgraph_version(),
        "flags": {
            "assistants": True,
            "crons": True,
            # LangSmith: no control plane, and no per-run tracing options.
            "langsmith": False,
            "langsmith_tracing_replicas": False,
            "langsmith_tracing_session_on_runs": False,
        },
        # As the reference reports a server it was not deployed to by LangSmith.
        "host": {"kind": "self-hosted", "project_id": None, "host_revision_id": None,
                 "revision_id": None, "tenant_id": None},
        "server": "runlane",
        "graphs": sorted(svc.graphs),
    }
    if not request.app.state.auth_on:
        body["active_runs"] = svc.executor.active_count
    return JSON(body)


def _langgraph_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langgraph")
    except PackageNotFoundError:
        return None
