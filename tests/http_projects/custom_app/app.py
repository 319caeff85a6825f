"""A project's own FastAPI app (langgraph.json http.app), served beside runlane's API."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    app.state.greeting = "hello from the project's lifespan"
    yield {"started": True}  # lifespan state: request.state.started
    app.state.greeting = None


app = FastAPI(lifespan=lifespan)


@app.middleware("http")
async def stamp(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["x-project-middleware"] = "stamped"
    return response


@app.get("/hello")
async def hello(request: Request) -> dict[str, Any]:
    return {"greeting": request.app.state.greeting, "started": request.state.started}


@app.get("/info")
async def info() -> dict[str, Any]:
    # Shadows runlane's /info: the project's routes win on the same path.
    return {"project": "custom info"}


@app.get("/ok")
async def ok() -> dict[str, Any]:
    # Does not shadow runlane's /ok: the probes stay the server's.
    return {"project": "not a probe"}


@app.get("/assistants/search")
async def assistants_search_get() -> dict[str, Any]:
    # The same path as runlane's POST /assistants/search: only GET is the project's.
    return {"project": "GET /assistants/search"}


@app.post("/echo")
async def echo(request: Request) -> PlainTextResponse:
    # A form or plain-text body reaches the project's route as sent.
    return PlainTextResponse((await request.body()).decode())
