"""Liveness and server information."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from runlane import __version__
from runlane.api.responses import JSON

router = APIRouter(tags=["system"])


@router.get("/ok")
async def ok() -> Response:
    return JSON({"ok": True})


@router.get("/info")
async def info(request: Request) -> Response:
    svc = request.app.state.runlane
    return JSON({
        "version": __version__,
        "server": "runlane",
        "langgraph_py_version": _langgraph_version(),
        "flags": {"assistants": True, "crons": False, "langsmith": False},
        "graphs": sorted(svc.graphs),
        "active_runs": svc.executor.active_count,
    })


def _langgraph_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langgraph")
    except PackageNotFoundError:
        return None
