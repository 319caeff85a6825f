"""Liveness, readiness, metrics and server information."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response

from runlane import __version__
from runlane.api.responses import JSON
from runlane.observability import metrics

READY_TIMEOUT = 2.0

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


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format, this worker's series (see runlane.observability.metrics)."""
    body, content_type = await metrics.render(request.app.state.runlane.store)
    return Response(body, media_type=content_type)


@router.get("/info")
async def info(request: Request) -> Response:
    """The reference server's fields (UIs read `flags` to decide what to show), with
    runlane's values, then runlane's own (`server`, `graphs`, `active_runs`)."""
    svc = request.app.state.runlane
    return JSON({
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
        "active_runs": svc.executor.active_count,
    })


def _langgraph_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langgraph")
    except PackageNotFoundError:
        return None
