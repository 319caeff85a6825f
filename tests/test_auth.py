"""Auth and per-owner isolation, end to end: real `runlane serve` processes with API
keys, JWT, and the custom langgraph.json handler (tests/auth_graphs), on SQLite and
on a 3-worker PostgreSQL cluster (each request to the next worker).

The cross-owner test is generated from the live server's OpenAPI document: a route
the table below does not cover fails it, so a new route cannot ship untested."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from auth_support import Secured, make_token, secured_server
from conftest import BACKENDS
from sse_gauge import sse_streams, streams_opened

# Routes anyone may call without credentials (runlane.api.auth.middleware.OPEN_PATHS).
OPEN = {"GET /ok", "GET /ready", "GET /info"}
# The operator's: no user's credentials open it, only RUNLANE_METRICS_TOKEN
# (tests/test_owner_oracles.py); anonymous callers get 401 as on every route.
OPERATOR = {"GET /metrics"}

ECHO = {"assistant_id": "echo", "input": {"text": "x"}}
# Every route that needs credentials: the body bob sends with alice's ids in the path
# (None: no body), and what he must get. 404 everywhere an id of alice's is in the
# path: exactly what a missing id answers (checked against random ids too).
ROUTES: dict[str, dict[str, Any] | None] = {
    "GET /assistants/{assistant_id}": None,
    "PATCH /assistants/{assistant_id}": {"metadata": {"hacked": True}},
    "DELETE /assistants/{assistant_id}": None,
    "GET /assistants/{assistant_id}/graph": None,
    "GET /assistants/{assistant_id}/schemas": None,
    "GET /assistants/{assistant_id}/subgraphs": None,
    "GET /assistants/{assistant_id}/subgraphs/{namespace}": None,
    "POST /assistants/{assistant_id}/versions": {},
    "POST /assistants/{assistant_id}/latest": {"version": 1},
    "GET /threads/{thread_id}": None,
    "PATCH /threads/{thread_id}": {"metadata": {"hacked": True}},
    "DELETE /threads/{thread_id}": None,
    "GET /threads/{thread_id}/state": None,
    "POST /threads/{thread_id}/state": {"values": {"text": "hacked"}},
    "GET /threads/{thread_id}/state/{checkpoint_id}": None,
    "POST /threads/{thread_id}/state/checkpoint": {
        "checkpoint": {"checkpoint_id": "{checkpoint_id}"}},
    "POST /threads/{thread_id}/history": {},
    "GET /threads/{thread_id}/history": None,
    "GET /threads/{thread_id}/stream": None,
    "POST /threads/{thread_id}/copy": None,
    "POST /threads/{thread_id}/runs": ECHO,
    "GET /threads/{thread_id}/runs": None,
    "POST /threads/{thread_id}/runs/stream": ECHO,
    "POST /threads/{thread_id}/runs/wait": ECHO,
    "GET /threads/{thread_id}/runs/{run_id}": None,
    "DELETE /threads/{thread_id}/runs/{run_id}": None,
    "GET /threads/{thread_id}/runs/{run_id}/join": None,
    "GET /threads/{thread_id}/runs/{run_id}/stream": None,
    "POST /threads/{thread_id}/runs/{run_id}/cancel": None,
    # A cron every second on alice's thread would show in her runs (test_alice_is_untouched).
    "POST /threads/{thread_id}/runs/crons": {"assistant_id": "echo", "schedule": "* * * * * *"},
    "PATCH /runs/crons/{cron_id}": {"enabled": False, "metadata": {"hacked": True}},
    "DELETE /runs/crons/{cron_id}": None,
    # A2A (docs/a2a.md): alice's assistant as an agent, its card. Her tasks (through
    # a shared assistant's endpoint): test_a2a.py.
    "POST /a2a/{assistant_id}": {"jsonrpc": "2.0", "id": 1, "method": "tasks/get",
                                 "params": {"id": "{thread_id}:{run_id}"}},
    "GET /a2a/{assistant_id}": None,
    "GET /a2a/{assistant_id}/.well-known/agent-card.json": None,
    "GET /a2a/{assistant_id}/.well-known/agent.json": None,
}
# Routes without ids in the path: what bob sends aiming at alice's rows, and the
# status he must get. Search and count must simply not show alice's rows.
BODY_ROUTES: dict[str, tuple[dict[str, Any], int]] = {
    "POST /assistants": ({"graph_id": "echo", "assistant_id": "{assistant_id}",
                          "if_exists": "do_nothing"}, 409),
    "POST /assistants/search": ({"limit": 1000}, 200),
    "POST /assistants/count": ({}, 200),
    "POST /threads": ({"thread_id": "{thread_id}", "if_exists": "do_nothing"}, 409),
    "POST /threads/search": ({"limit": 1000}, 200),
    "POST /threads/count": ({}, 200),
    "POST /runs": ({"assistant_id": "{assistant_id}", "input": {"text": "x"}}, 404),
    "POST /runs/stream": ({"assistant_id": "{assistant_id}", "input": {"text": "x"}}, 404),
    "POST /runs/wait": ({"assistant_id": "{assistant_id}", "input": {"text": "x"}}, 404),
    "POST /runs/cancel": ({"thread_id": "{thread_id}", "run_ids": ["{run_id}"]}, 404),
    "POST /runs/batch": ([{"assistant_id": "{assistant_id}", "input": {"text": "x"}}], 404),
    "POST /threads/prune": ({"thread_ids": ["{thread_id}"], "strategy": "delete"}, 200),
    "POST /runs/crons": ({"assistant_id": "{assistant_id}", "schedule": "* * * * * *"}, 404),
    "POST /runs/crons/search": ({"thread_id": "{thread_id}", "limit": 100}, 200),
    "POST /runs/crons/count": ({"thread_id": "{thread_id}"}, 200),
    # The v2 protocol (a thread id nobody uses is created on first use, so these are
    # not in ROUTES): alice's thread is not found, whatever the command.
    "POST /threads/{thread_id}/stream/events": ({"channels": ["values", "lifecycle"]}, 404),
    "POST /threads/{thread_id}/commands": ({"id": 1, "method": "run.start", "params": {
        "assistant_id": "{assistant_id}", "input": {"text": "x"}}}, 404),
    # alice's item, named exactly: bob reaches only his own space. In this order on
    # every pass (bob's PUT last), so bob's own item never answers his GET. Search and
    # list everything: alice's item or namespace would name ids bob never sent.
    "DELETE /store/items": ({"namespace": ["{store_root}", "notes"], "key": "{store_key}"}, 204),
    "GET /store/items": ({"namespace": "{store_root}.notes", "key": "{store_key}"}, 200),
    "POST /store/items/search": ({"limit": 1000}, 200),
    "POST /store/namespaces": ({"limit": 1000}, 200),
    "PUT /store/items": ({"namespace": ["{store_root}", "notes"], "key": "{store_key}",
                          "value": {"by": "bob"}}, 204),
}
# What bob gets from those, exactly: what he would get if alice's rows did not exist.
BODY_ANSWERS: dict[str, Any] = {
    "POST /threads/prune": {"pruned_count": 0},
    "POST /runs/crons/search": [],
    "POST /runs/crons/count": 0,
    "GET /store/items": None,
}

MODES = ["api-key", "jwt", "custom"]
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module", params=[(m, b) for b in BACKENDS for m in MODES],
                ids=lambda p: f"{p[0]}-{p[1]}")
def secured(request: pytest.FixtureRequest) -> Iterator[Secured]:
    mode, backend = request.param
    with secured_server(mode, backend) as server:
        yield server


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        # a name without an id (a subgraph's {namespace}) is sent as it is
        return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), m.group(1)), template)
    if isinstance(template, dict):
        return {k: _fill(v, ids) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, ids) for v in template]
    return template


def _send(api: httpx.Client, route: str, ids: dict[str, str], body: Any) -> httpx.Response:
    method, path = route.split(" ", 1)
    url = _fill(path, ids)
    if method == "GET" and url.endswith("/stream"):
        with api.stream("GET", url) as resp:
            resp.read()
            return resp
    kwargs: dict[str, Any] = {}
    if body is not None:  # a GET's "body" is its query
        kwargs = {"params" if method == "GET" else "json": _fill(body, ids)}
    return api.request(method, url, **kwargs)


def _leaked(resp: httpx.Response, sent: str, secret_ids: set[str]) -> set[str]:
    """Ids of someone else's that a response names, other than those the request did."""
    return (set(UUID_RE.findall(resp.text)) & secret_ids) - set(UUID_RE.findall(sent))


@pytest.fixture(scope="module")
def alice_world(secured: Secured) -> dict[str, Any]:
    """alice's rows: a thread with a finished run (and checkpoints), an assistant,
    and a second thread with a long run that is still running."""
    with secured.http("alice") as api:
        thread = api.post("/threads", json={"metadata": {"mine": "alice"}})
        assert thread.status_code == 200, thread.text
        tid = thread.json()["thread_id"]
        done = api.post(f"/threads/{tid}/runs/wait", json={**ECHO, "input": {"text": "a"}})
        assert done.status_code == 200, done.text
        run_id = api.get(f"/threads/{tid}/runs").json()[0]["run_id"]
        assistant = api.post("/assistants", json={"graph_id": "echo", "name": "alice's"}).json()
        busy = api.post("/threads", json={}).json()["thread_id"]
        active = api.post(f"/threads/{busy}/runs", json={
            "assistant_id": "sleepy", "input": {"steps": 3000, "delay": 0.1}}).json()
        deadline = time.monotonic() + 20
        while api.get(f"/threads/{busy}/runs/{active['run_id']}").json()["status"] != "running":
            assert time.monotonic() < deadline, "alice's long run never started"
            time.sleep(0.05)
        # A cron on the finished thread (yearly: it does not fire during the tests),
        # and a store item whose value holds an id of its own, so that any answer
        # showing it to bob names an id he never sent.
        cron = api.post(f"/threads/{tid}/runs/crons", json={
            "assistant_id": "echo", "schedule": "0 0 1 1 *", "input": {"text": "y"},
            "metadata": {"mine": "alice"}})
        assert cron.status_code == 200, cron.text
        store_root, store_key, store_secret = (str(uuid.uuid4()) for _ in range(3))
        put = api.put("/store/items", json={"namespace": [store_root, "notes"], "key": store_key,
                                            "value": {"secret": store_secret}})
        assert put.status_code == 204, put.text
        finished = {"thread_id": tid, "run_id": run_id,
                    "assistant_id": assistant["assistant_id"],
                    "checkpoint_id": api.get(f"/threads/{tid}/state").json()["checkpoint_id"],
                    "cron_id": cron.json()["cron_id"], "store_root": store_root,
                    "store_key": store_key}
        running = {**finished, "thread_id": busy, "run_id": active["run_id"]}
        snapshot = {
            "thread": api.get(f"/threads/{tid}").json(),
            "state": api.get(f"/threads/{tid}/state").json(),
            "runs": api.get(f"/threads/{tid}/runs").json(),
            "assistant": api.get(f"/assistants/{assistant['assistant_id']}").json(),
            "crons": api.post("/runs/crons/search", json={"thread_id": tid}).json(),
            "item": api.get("/store/items", params={"namespace": f"{store_root}.notes",
                                                    "key": store_key}).json(),
        }
        assert [c["cron_id"] for c in snapshot["crons"]] == [finished["cron_id"]]
        assert snapshot["item"]["value"] == {"secret": store_secret}
    secret = {v for ids in (finished, running) for v in ids.values()} | {store_secret}
    return {"finished": finished, "running": running, "snapshot": snapshot, "secret": secret}


# ------------------------------------------------------------------ authentication


def test_every_route_needs_credentials(secured: Secured) -> None:
    """Without credentials: 401 with WWW-Authenticate on every route but the open
    ones, which answer as usual."""
    with secured.http(None) as anonymous:
        spec = anonymous.get("/openapi.json")
        assert spec.status_code == 200
        ids = {name: str(uuid.uuid4()) for name in
               ("thread_id", "run_id", "assistant_id", "checkpoint_id", "cron_id")}
        for path, item in spec.json()["paths"].items():
            for method in item:
                route = f"{method.upper()} {path}"
                resp = anonymous.request(method.upper(), _fill(path, ids), json={})
                if route in OPEN:
                    assert resp.status_code in (200, 503), (route, resp.text)
                    continue
                assert resp.status_code == 401, (route, resp.status_code, resp.text)
                assert resp.headers.get("www-authenticate"), route
                assert resp.json()["detail"], route


def test_wrong_credentials_are_401(secured: Secured) -> None:
    wrong: list[dict[str, str]] = [{"authorization": "Bearer nope"},
                                   {"authorization": "Basic YWxpY2U6cGFzcw=="}]
    if secured.mode == "api-key":
        wrong += [{"x-api-key": "alice-key-" + "0" * 32},
                  {"x-api-key": API_KEY_PREFIX_ONLY}]
    if secured.mode == "jwt":
        key = secured.signing_key
        past = int(time.time()) - 3600
        wrong += [
            {"authorization": f"Bearer {make_token(key, 'alice', exp=past)}"},           # expired
            {"authorization": f"Bearer {make_token(key, 'alice', nbf=int(time.time()) + 3600)}"},
            {"authorization": f"Bearer {make_token(key, 'alice', iss='https://evil')}"},
            {"authorization": f"Bearer {make_token(key, 'alice', aud='someone-else')}"},
            {"authorization": f"Bearer {make_token(key, 'alice', exp=None)}"},           # no exp
            {"authorization": f"Bearer {make_token(key, None)}"},                       # no sub
            {"authorization": "Bearer " + _hs256_forgery()},  # HS256 signed with the public key?
        ]
    for headers in wrong:
        with httpx.Client(base_url=secured.url, headers=headers, timeout=30) as api:
            resp = api.post("/threads/search", json={})
            assert resp.status_code == 401, (headers, resp.text)
            assert resp.headers.get("www-authenticate"), headers
            assert resp.json()["detail"]


API_KEY_PREFIX_ONLY = "alice-key-0123"


def _hs256_forgery() -> str:
    import jwt as pyjwt

    return pyjwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, "x" * 32,
                        algorithm="HS256")


def test_custom_handler_status_and_identity(secured: Secured) -> None:
    if secured.mode != "custom":
        pytest.skip("the custom handler's own answers")
    with httpx.Client(base_url=secured.url, timeout=30, headers={
            "authorization": "Bearer suspended-token-0123456789abcdef"}) as api:
        resp = api.get("/threads/" + str(uuid.uuid4()))
        assert resp.status_code == 403 and resp.json()["detail"] == "account suspended"
    with secured.http("alice") as api:
        # The handler saw the path parameters and the body; the route still got the body.
        blocked = api.get("/threads/00000000-0000-4000-8000-00000000dead")
        assert blocked.status_code == 403 and blocked.json()["detail"] == "this thread is blocked"
        body = api.post("/threads", json={"metadata": {"x": "forbidden-by-auth"}})
        assert body.status_code == 403 and body.json()["detail"] == "forbidden body"
        # threads.create added metadata; threads.search filters on it.
        thread = api.post("/threads", json={"metadata": {"x": 1}}).json()
        assert thread["metadata"] == {"x": 1, "created_by": "alice"}
        # A thread made by a run (not through threads.create) is alice's, readable,
        # but the search filter does not admit it.
        run = api.post("/runs/wait", json={**ECHO, "on_completion": "keep"})
        assert run.status_code == 200, run.text
        found = {t["thread_id"] for t in api.post("/threads/search", json={"limit": 1000}).json()}
        assert thread["thread_id"] in found
        assert all(t["metadata"].get("created_by") == "alice"
                   for t in api.post("/threads/search", json={"limit": 1000}).json())
        # assistants.delete: only admins.
        mine = api.post("/assistants", json={"graph_id": "echo"}).json()["assistant_id"]
        denied = api.delete(f"/assistants/{mine}")
        assert denied.status_code == 403, denied.text
        assert api.get(f"/assistants/{mine}").status_code == 200
    with secured.http("carol") as api:
        mine = api.post("/assistants", json={"graph_id": "echo"}).json()["assistant_id"]
        assert api.delete(f"/assistants/{mine}").status_code == 204
        # threads.update filters on metadata locked == False for carol.
        open_ = api.post("/threads", json={"metadata": {"locked": False}}).json()["thread_id"]
        locked = api.post("/threads", json={"metadata": {"locked": True}}).json()["thread_id"]
        assert api.patch(f"/threads/{open_}", json={"metadata": {"a": 1}}).status_code == 200
        assert api.patch(f"/threads/{locked}", json={"metadata": {"a": 1}}).status_code == 404
        run = api.post(f"/threads/{locked}/runs", json={
            "assistant_id": "sleepy", "input": {"steps": 1000, "delay": 0.05}}).json()
        cancel = api.post(f"/threads/{locked}/runs/{run['run_id']}/cancel")
        assert cancel.status_code == 404, cancel.text
        assert api.get(f"/threads/{locked}").json()["metadata"]["locked"] is True
        bulk = api.post("/runs/cancel", json={"thread_id": locked, "run_ids": [run["run_id"]]})
        assert bulk.status_code == 404, bulk.text
        assert api.get(f"/threads/{locked}/runs/{run['run_id']}").json()["cancel_action"] is None
        # assistants.search: a $contains filter, applied in SQL (search and count).
        tagged = api.post("/assistants", json={"graph_id": "echo",
                                               "metadata": {"tags": ["x", "carol"]}}).json()
        api.post("/assistants", json={"graph_id": "echo", "metadata": {"tags": ["x"]}})
        api.post("/assistants", json={"graph_id": "echo", "metadata": {"tags": "carol"}})
        found = api.post("/assistants/search", json={"limit": 1000}).json()
        assert [a["assistant_id"] for a in found] == [tagged["assistant_id"]]
        assert api.post("/assistants/count", json={}).json() == 1
        # Carol may not, but alice (no filter for her) has no access to carol's at all.
    with secured.http("alice") as api:
        assert api.post(f"/threads/{locked}/runs/{run['run_id']}/cancel").status_code == 404
    with secured.http("carol") as api:
        api.delete(f"/threads/{locked}")


# ----------------------------------------------------------------- the boundary


def test_route_table_covers_every_route(secured: Secured) -> None:
    """Every route the server documents is in ROUTES or BODY_ROUTES (or open)."""
    with secured.http(None) as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
    served = {f"{m.upper()} {p}" for p, item in paths.items() for m in item}
    covered = set(ROUTES) | set(BODY_ROUTES) | OPEN | OPERATOR
    assert served - covered == set(), "routes without a cross-owner test"
    assert covered - served == set(), "the table names routes the server does not serve"


@pytest.mark.parametrize("target", ["finished", "running"])
def test_other_owner_is_not_found_on_every_route(secured: Secured, alice_world: dict[str, Any],
                                                 target: str) -> None:
    """bob, with alice's ids, on every route: 404 exactly as for ids that do not
    exist (same status, same message with the ids swapped), and no answer names an
    id of alice's he did not send."""
    ids = alice_world[target]
    unknown = {k: str(uuid.uuid4()) for k in ids}
    with secured.http("bob") as bob:
        for route, body in ROUTES.items():
            # The custom handler refuses assistant deletes to non-admins before any
            # row is read: 403 for any id, alice's or none, so it tells nothing.
            expected = (403 if secured.mode == "custom" and route ==
                        "DELETE /assistants/{assistant_id}" else 404)
            resp = _send(bob, route, ids, body)
            assert resp.status_code == expected, (route, resp.status_code, resp.text[:300])
            missing = _send(bob, route, unknown, body)
            assert missing.status_code == expected, (route, missing.text[:300])
            swap = resp.json()["detail"]
            for key, value in ids.items():
                swap = swap.replace(value, unknown[key])
            assert swap == missing.json()["detail"], route
            assert not _leaked(resp, str(resp.request.url) + resp.request.content.decode(),
                               alice_world["secret"]), route
        for route, (body, status) in BODY_ROUTES.items():
            resp = _send(bob, route, ids, body)
            assert resp.status_code == status, (route, resp.status_code, resp.text[:300])
            sent = str(resp.request.url) + resp.request.content.decode()
            assert not _leaked(resp, sent, alice_world["secret"]), (route, resp.text[:300])
            if route in BODY_ANSWERS:
                assert resp.json() == BODY_ANSWERS[route], (route, resp.text[:300])
        # A run that would create the thread: alice's id cannot be taken (ids are
        # global), so 409 as for any existing thread, and nothing of hers changes.
        taken = bob.post(f"/threads/{ids['thread_id']}/runs",
                         json={**ECHO, "if_not_exists": "create"})
        assert taken.status_code == 409, taken.text
        assert not _leaked(taken, str(taken.request.url), alice_world["secret"])
        counted = bob.post("/threads/count", json={}).json()
        assert counted == len(bob.post("/threads/search", json={"limit": 1000}).json())


def test_alice_is_untouched(secured: Secured, alice_world: dict[str, Any]) -> None:
    """After bob's attempts on every route: alice's rows are as they were, her long
    run is still running with no cancel recorded, and her own cancel works."""
    test_other_owner_is_not_found_on_every_route(secured, alice_world, "running")
    finished, running, snapshot = (alice_world["finished"], alice_world["running"],
                                   alice_world["snapshot"])
    with secured.http("alice") as api:
        tid = finished["thread_id"]
        assert api.get(f"/threads/{tid}").json() == snapshot["thread"]
        assert api.get(f"/threads/{tid}/state").json() == snapshot["state"]
        assert api.get(f"/threads/{tid}/runs").json() == snapshot["runs"]
        assert api.get(f"/assistants/{finished['assistant_id']}").json() == snapshot["assistant"]
        assert api.post("/runs/crons/search", json={"thread_id": tid}).json() == snapshot["crons"]
        # bob wrote and deleted the very same namespace and key: in his own space.
        assert api.get("/store/items", params={"namespace": f"{finished['store_root']}.notes",
                                               "key": finished["store_key"]}).json() == \
            snapshot["item"]
        run = api.get(f"/threads/{running['thread_id']}/runs/{running['run_id']}").json()
        assert run["status"] == "running" and run["cancel_action"] is None, run
        cancel = api.post(f"/threads/{running['thread_id']}/runs/{running['run_id']}/cancel",
                          params={"wait": "true"})
        assert cancel.status_code == 200 and cancel.json()["status"] == "interrupted", cancel.text


def test_concurrent_cross_owner_cancels_never_land(secured: Secured) -> None:
    """bob fires many concurrent cancels (single, bulk by thread, bulk by status, both
    actions) at alice's running and queued runs, spread over every worker: none
    lands, and alice's concurrent duplicate cancels still answer 202 every time."""
    with secured.http("alice") as alice, secured.http("bob") as bob:
        tid = alice.post("/threads", json={}).json()["thread_id"]
        long = {"assistant_id": "sleepy", "input": {"steps": 3000, "delay": 0.1}}
        first = alice.post(f"/threads/{tid}/runs", json=long).json()
        queued = alice.post(f"/threads/{tid}/runs", json=long).json()
        own = bob.post("/threads", json={}).json()["thread_id"]
        bob_run = bob.post(f"/threads/{own}/runs", json=long).json()

        def attack(i: int) -> int:
            run_id = (first, queued)[i % 2]["run_id"]
            action = ("interrupt", "rollback")[i // 2 % 2]
            kind = i % 3
            if kind == 0:
                return bob.post(f"/threads/{tid}/runs/{run_id}/cancel",
                                params={"action": action}).status_code
            if kind == 1:
                return bob.post("/runs/cancel", params={"action": action},
                                json={"thread_id": tid, "run_ids": [run_id]}).status_code
            return bob.post("/runs/cancel", json={"thread_id": tid}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(attack, range(60)))
        assert set(answers) == {404}, answers
        # Bulk cancel by status reaches bob's own runs only.
        for _ in range(5):
            assert bob.post("/runs/cancel", json={"status": "pending"}).status_code == 204
        assert bob.post("/runs/cancel", json={"status": "running"}).status_code == 204
        for run in (first, queued):
            row = alice.get(f"/threads/{tid}/runs/{run['run_id']}").json()
            assert row["cancel_action"] is None and row["status"] in ("running", "pending"), row
        deadline = time.monotonic() + 30
        while bob.get(f"/threads/{own}/runs/{bob_run['run_id']}").json()["status"] != "interrupted":
            assert time.monotonic() < deadline, "bob's own bulk cancel did not stop his run"
            time.sleep(0.05)

        def cancel(_: int) -> int:
            return alice.post(f"/threads/{tid}/runs/{first['run_id']}/cancel").status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(cancel, range(16))) == {202}
        alice.post("/runs/cancel", json={"thread_id": tid})
        alice.delete(f"/threads/{tid}")


async def test_sdk_works_per_owner(secured: Secured) -> None:
    """The official SDK with credentials: threads, runs, streaming, join and cancel
    work for their owner; the other owner's SDK gets 404 for the same ids."""
    alice, bob = secured.sdk("alice"), secured.sdk("bob")
    thread = await alice.threads.create(metadata={"sdk": True})
    chunks = [c async for c in alice.runs.stream(thread["thread_id"], "echo",
                                                 input={"text": "hi"}, stream_mode="values")]
    assert chunks[-1].data == {"text": "hi", "echoed": ["hi"]}
    run = await alice.runs.create(thread["thread_id"], "sleepy",
                                  input={"steps": 1000, "delay": 0.05})
    tid, rid = thread["thread_id"], run["run_id"]
    for call in (lambda: bob.threads.get(tid), lambda: bob.runs.get(tid, rid),
                 lambda: bob.runs.join(tid, rid), lambda: bob.runs.cancel(tid, rid, wait=True),
                 lambda: bob.threads.get_state(tid), lambda: bob.threads.delete(tid)):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await call()
        assert refused.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as refused:
        async for _ in bob.runs.join_stream(tid, rid):
            pass
    assert refused.value.response.status_code == 404
    mine = await bob.threads.search(limit=1000)
    assert thread["thread_id"] not in {t["thread_id"] for t in mine}
    final = await alice.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    assert final["status"] == "interrupted"
    # Stateless runs: the temporary thread is the caller's.
    result = await bob.runs.wait(None, "echo", input={"text": "s"})
    assert result == {"text": "s", "echoed": ["s"]}


def test_shared_default_assistants(secured: Secured) -> None:
    """Each graph's default assistant is visible to every user and changeable by
    none (403: they can read it anyway, so nothing leaks); users' own assistants are
    private."""
    with secured.http("alice") as alice, secured.http("bob") as bob:
        default = bob.get("/assistants/echo")
        assert default.status_code == 200, default.text
        aid = default.json()["assistant_id"]
        for resp in (bob.patch(f"/assistants/{aid}", json={"metadata": {"x": 1}}),
                     bob.delete(f"/assistants/{aid}"),
                     alice.patch("/assistants/echo", json={"name": "mine"})):
            assert resp.status_code == 403, resp.text
        assert bob.get("/assistants/echo").json() == default.json()
        mine = alice.post("/assistants", json={"graph_id": "echo", "name": "a"}).json()
        visible = {a["assistant_id"] for a in bob.post("/assistants/search",
                                                       json={"limit": 1000}).json()}
        assert aid in visible and mine["assistant_id"] not in visible
        assert alice.patch(f"/assistants/{mine['assistant_id']}",
                           json={"name": "b"}).json()["name"] == "b"
        ran = bob.post("/runs/wait", json={"assistant_id": aid, "input": {"text": "d"}})
        assert ran.status_code == 200, ran.text


# ------------------------------------------------- crons, store, thread stream, batch


@contextlib.contextmanager
def _refused(status: int) -> Iterator[None]:
    """An SDK call that must fail with `status`."""
    with pytest.raises(httpx.HTTPStatusError) as refused:
        yield
    assert refused.value.response.status_code == status, refused.value


async def test_crons_fire_as_their_owner(secured: Secured) -> None:
    """alice's crons (one on her thread, one stateless) fire every second: each run is
    alice's, its thread too, and the graph writes into alice's store space. bob sees
    none of it: not the crons, not their runs or threads, not what they stored."""
    alice, bob = secured.sdk("alice"), secured.sdk("bob")
    tag = str(uuid.uuid4())
    tid = (await alice.threads.create())["thread_id"]
    crons = [await alice.crons.create_for_thread(tid, "memory", schedule="* * * * * *",
                                                 input={"log": tag}),
             await alice.crons.create("memory", schedule="* * * * * *", input={"log": tag},
                                      on_run_completed="keep")]
    cron_ids = {c["cron_id"] for c in crons}
    try:
        deadline = time.monotonic() + 40
        while True:  # every firing's run logs (run id -> cron, thread) in alice's store
            logged = (await alice.store.search_items(["cron_log", tag], limit=100))["items"]
            if {i["value"]["cron_id"] for i in logged} == cron_ids:
                break
            assert time.monotonic() < deadline, f"alice's crons did not both fire: {logged}"
            await asyncio.sleep(0.3)
        # bob: not the crons ...
        assert not cron_ids & {c["cron_id"] for c in await bob.crons.search(limit=100)}
        assert await bob.crons.count(thread_id=tid) == 0
        assert await bob.crons.search(thread_id=tid) == []
        for cron_id in cron_ids:
            with _refused(404):
                await bob.crons.update(cron_id, enabled=False)
            with _refused(404):
                await bob.crons.delete(cron_id)
        # ... nor a cron of his own on alice's thread ...
        with _refused(404):
            await bob.crons.create_for_thread(tid, "memory", schedule="* * * * * *")
        # ... nor what their runs stored, under the very same namespace.
        assert (await bob.store.search_items(["cron_log", tag]))["items"] == []
        assert await bob.store.get_item(["cron_log", tag], logged[0]["key"]) is None
        bobs_threads = {t["thread_id"] for t in await bob.threads.search(limit=1000)}
        for item in logged:
            run_id, thread_id = item["key"], item["value"]["thread_id"]
            run = await alice.runs.get(thread_id, run_id)
            assert run["metadata"]["cron_id"] == item["value"]["cron_id"], run
            assert (await alice.threads.get(thread_id))["thread_id"] == thread_id
            assert thread_id not in bobs_threads
            with _refused(404):
                await bob.runs.get(thread_id, run_id)
            with _refused(404):
                await bob.threads.get(thread_id)
    finally:
        for cron_id in cron_ids:
            await alice.crons.delete(cron_id)
    # Still alice's after bob's attempts: her crons were there to delete (no 404 above).


async def test_cron_runs_run_as_their_creator(secured: Secured) -> None:
    """A cron's runs (on a thread, and stateless) run as the user who created the
    cron: the graph sees the same `langgraph_auth_user`, `_user_id`, `_permissions`
    and `user_id` in its configurable as in a run alice creates herself, on whichever
    worker fires it."""
    alice = secured.sdk("alice")
    tag = str(uuid.uuid4())
    tid = (await alice.threads.create())["thread_id"]
    await alice.runs.wait(tid, "memory", input={"log": tag})
    crons = [await alice.crons.create_for_thread(tid, "memory", schedule="* * * * * *",
                                                 input={"log": tag}),
             await alice.crons.create("memory", schedule="* * * * * *", input={"log": tag})]
    cron_ids = {c["cron_id"] for c in crons}
    try:
        deadline = time.monotonic() + 40
        while True:
            logged = (await alice.store.search_items(["cron_log", tag], limit=100))["items"]
            if cron_ids <= {i["value"]["cron_id"] for i in logged}:
                break
            assert time.monotonic() < deadline, f"alice's crons did not both fire: {logged}"
            await asyncio.sleep(0.3)
    finally:
        for cron_id in cron_ids:
            await alice.crons.delete(cron_id)
    [own] = [i["value"]["auth"] for i in logged if i["value"]["cron_id"] is None]
    assert own["langgraph_auth_user"]["identity"] == own["langgraph_auth_user_id"] == "alice"
    assert own["user_id"] == "alice"
    if secured.mode == "custom":  # tests/auth_graphs/auth.py: alice's permissions
        assert own["langgraph_auth_permissions"] == ["read", "write"], own
    for item in logged:
        if item["value"]["cron_id"] is not None:
            assert item["value"]["auth"] == own, (item["value"], own)


async def test_store_items_are_their_owners(secured: Secured) -> None:
    """alice and bob use the same namespaces and keys, through the API and through
    graph runs: each reads, searches, lists and deletes only their own items."""
    alice, bob = secured.sdk("alice"), secured.sdk("bob")
    root = str(uuid.uuid4())
    await alice.store.put_item([root, "a"], "k", {"who": "alice"})
    await bob.store.put_item([root, "a"], "k", {"who": "bob"})
    assert (await alice.store.get_item([root, "a"], "k"))["value"] == {"who": "alice"}
    assert (await bob.store.get_item([root, "a"], "k"))["value"] == {"who": "bob"}
    await bob.store.delete_item([root, "a"], "k")
    assert await bob.store.get_item([root, "a"], "k") is None
    assert (await alice.store.get_item([root, "a"], "k"))["value"] == {"who": "alice"}
    assert (await bob.store.search_items([root]))["items"] == []
    assert (await bob.store.list_namespaces(prefix=[root]))["namespaces"] == []
    everything = (await bob.store.list_namespaces(limit=1000))["namespaces"]
    assert all(ns[:1] != [root] for ns in everything), everything
    assert (await alice.store.list_namespaces(prefix=[root]))["namespaces"] == [[root, "a"]]

    # A graph run writes where its caller's API calls read, and nowhere else.
    secret = str(uuid.uuid4())
    ran = await alice.runs.wait(None, "memory", input={
        "namespace": [root, "graph"], "key": "m", "write": {"secret": secret}})
    assert ran["seen"] is None and ran["seen_sync"] == {"secret": secret}
    assert (await alice.store.get_item([root, "graph"], "m"))["value"] == {"secret": secret}
    assert await bob.store.get_item([root, "graph"], "m") is None
    assert secret not in str(await bob.store.search_items([root], limit=100))
    # bob's run, reading (sync and async) and writing the same item: his own.
    ran = await bob.runs.wait(None, "memory", input={
        "namespace": [root, "graph"], "key": "m", "write": {"who": "bob"}})
    assert ran["seen"] is None and ran["seen_sync"] == {"who": "bob"}
    assert (await alice.store.get_item([root, "graph"], "m"))["value"] == {"secret": secret}


async def test_thread_stream_is_its_owners(secured: Secured) -> None:
    """bob joining alice's thread stream (with or without a Last-Event-ID of hers)
    is 404 with no event; and a stream alice holds on a thread she deletes never
    carries the runs of bob's thread created with the same id right after."""
    alice, bob = secured.sdk("alice"), secured.sdk("bob")

    async def read_all(client: Any, tid: str, **kwargs: Any) -> list[Any]:
        return [p async for p in await client.threads.join_stream(tid, **kwargs)]

    tid = (await alice.threads.create())["thread_id"]
    run = await alice.runs.create(tid, "sleepy", input={"steps": 100, "delay": 0.05})
    for last in (None, f"{run['run_id']}:1", f"{run['run_id']}:done"):
        with _refused(404):
            await read_all(bob, tid, last_event_id=last)
    await alice.runs.cancel(tid, run["run_id"], wait=True)

    async def first_event(client: Any, tid: str) -> Any:
        async for part in await client.threads.join_stream(tid):
            return part
        return None  # the stream ended without one

    for _ in range(3):  # a race: repeated
        tid = (await alice.threads.create())["thread_id"]
        before = await sse_streams(secured.server)
        reader = asyncio.ensure_future(first_event(alice, tid))
        await streams_opened(secured.server, before)  # subscribed before the delete
        await alice.threads.delete(tid)
        await bob.threads.create(thread_id=tid)  # ids are global: free again
        bobs = await bob.runs.create(tid, "echo", input={"text": "bob's"})
        # alice's thread never had a run: any event at all would be bob's. The stream
        # ends once it sees her thread is gone.
        leaked = await asyncio.wait_for(reader, 30)
        assert leaked is None, f"alice's stream carried bob's run {bobs['run_id']}: {leaked}"
        await bob.runs.join(tid, bobs["run_id"])
        await bob.threads.delete(tid)


def test_batch_prune_and_copy_never_reach_another_owners_thread(
        secured: Secured, alice_world: dict[str, Any]) -> None:
    """bob's batch runs are stateless: naming alice's thread in any field creates
    nothing on it; his prune of her threads prunes nothing of hers (his own, yes); his
    copy of her thread is 404 and makes no thread."""
    finished = alice_world["finished"]
    tid = finished["thread_id"]
    with secured.http("alice") as alice:
        before = {"state": alice.get(f"/threads/{tid}/state").json(),
                  "history": alice.post(f"/threads/{tid}/history", json={"limit": 100}).json(),
                  "runs": alice.get(f"/threads/{tid}/runs").json()}
    with secured.http("bob") as bob:
        named = bob.post("/runs/batch", json=[{**ECHO, "thread_id": tid}])
        assert named.status_code == 422 and "thread_id" in named.text, named.text
        forked = bob.post("/runs/batch", json=[{**ECHO, "checkpoint": {
            "thread_id": tid, "checkpoint_id": finished["checkpoint_id"]}}])
        assert forked.status_code == 404, forked.text
        assert not _leaked(forked, forked.request.content.decode(), alice_world["secret"])
        configured = bob.post("/runs/batch", json=[
            {**ECHO, "on_completion": "keep", "config": {"configurable": {"thread_id": tid}}}
        ] * 3)
        assert configured.status_code == 200, configured.text
        for run in configured.json():
            assert run["thread_id"] != tid
            joined = bob.get(f"/threads/{run['thread_id']}/runs/{run['run_id']}/join")
            assert joined.json() == {"text": "x", "echoed": ["x"]}, joined.text
        own = bob.post("/threads", json={}).json()["thread_id"]
        pruned = bob.post("/threads/prune", json={
            "thread_ids": [tid, alice_world["running"]["thread_id"], own], "strategy": "delete"})
        assert pruned.json() == {"pruned_count": 1}, pruned.text
        assert bob.get(f"/threads/{own}").status_code == 404
        kept = bob.post("/threads/prune", json={"thread_ids": [tid], "strategy": "keep_latest"})
        assert kept.json() == {"pruned_count": 0}, kept.text
        count = bob.post("/threads/count", json={}).json()
        assert bob.post(f"/threads/{tid}/copy").status_code == 404
        assert bob.post("/threads/count", json={}).json() == count
    with secured.http("alice") as alice:
        assert alice.get(f"/threads/{tid}/state").json() == before["state"]
        assert alice.post(f"/threads/{tid}/history", json={"limit": 100}).json() == \
            before["history"]
        assert alice.get(f"/threads/{tid}/runs").json() == before["runs"]


def test_custom_handlers_on_crons_and_store(secured: Secured) -> None:
    """tests/auth_graphs/auth.py: crons.create adds metadata; carol's crons.search,
    update and delete filter out locked crons (in SQL for search and count); carol's
    store operations are rewritten into ("carol-folder", ...); store.delete denies
    carol (403)."""
    if secured.mode != "custom":
        pytest.skip("the custom handlers' own answers")
    cron = {"assistant_id": "echo", "schedule": "0 0 1 1 *"}
    with secured.http("carol") as carol:
        open_ = carol.post("/runs/crons", json={**cron, "metadata": {"locked": False}}).json()
        assert open_["metadata"] == {"locked": False, "created_by": "carol"}, open_
        locked = carol.post("/runs/crons", json={**cron, "metadata": {"locked": True}}).json()
        assert locked["metadata"] == {"locked": True, "created_by": "carol"}, locked
        found = carol.post("/runs/crons/search", json={"limit": 100}).json()
        assert [c["cron_id"] for c in found] == [open_["cron_id"]]
        assert carol.post("/runs/crons/count", json={}).json() == 1
        assert carol.patch(f"/runs/crons/{locked['cron_id']}",
                           json={"enabled": False}).status_code == 404
        assert carol.delete(f"/runs/crons/{locked['cron_id']}").status_code == 404
        patched = carol.patch(f"/runs/crons/{open_['cron_id']}",
                              json={"metadata": {"locked": False, "n": 1}})
        assert patched.status_code == 200, patched.text
        assert carol.delete(f"/runs/crons/{open_['cron_id']}").status_code == 204

        item = {"namespace": ["notes"], "key": "k", "value": {"v": 1}}
        assert carol.put("/store/items", json=item).status_code == 204
        got = carol.get("/store/items", params={"namespace": "notes", "key": "k"}).json()
        assert got["namespace"] == ["carol-folder", "notes"] and got["value"] == {"v": 1}
        assert carol.post("/store/namespaces", json={}).json() == {
            "namespaces": [["carol-folder", "notes"]]}
        assert [i["namespace"] for i in carol.post("/store/items/search", json={}).json()[
            "items"]] == [["carol-folder", "notes"]]
        denied = carol.request("DELETE", "/store/items", json={"namespace": ["notes"], "key": "k"})
        assert denied.status_code == 403, denied.text
        assert carol.get("/store/items", params={"namespace": "notes", "key": "k"}).json() == got
    with secured.http("alice") as alice:
        # No filter for alice; carol's locked cron is still not hers to see.
        seen = {c["cron_id"] for c in alice.post("/runs/crons/search",
                                                json={"limit": 100}).json()}
        assert locked["cron_id"] not in seen
        assert alice.get("/store/items", params={"namespace": "carol-folder.notes",
                                                 "key": "k"}).json() is None


def test_v2_protocol_websocket_is_authenticated_and_owned(secured: Secured,
                                                          alice_world: dict[str, Any]) -> None:
    """The WebSocket passes no HTTP middleware: its handshake is authenticated by the
    route. Without credentials it is refused; bob on alice's thread is refused as not
    found; alice on her own thread gets her run's events; bob on a thread of his own
    answers commands, and his run.start on alice's thread id over HTTP is 404."""
    thread_id = alice_world["finished"]["thread_id"]
    base = secured.url.replace("http", "ws")

    async def refused(headers: dict[str, str], tid: str) -> bool:
        try:
            async with websockets.connect(f"{base}/threads/{tid}/stream/events",
                                          additional_headers=headers) as ws:
                await ws.send(json.dumps({"id": 1, "method": "agent.getTree"}))
                await ws.recv()
        except (websockets.InvalidStatus, websockets.ConnectionClosed):
            return True
        return False

    async def tree(headers: dict[str, str], tid: str) -> dict[str, Any]:
        async with websockets.connect(f"{base}/threads/{tid}/stream/events",
                                      additional_headers=headers) as ws:
            await ws.send(json.dumps({"id": 1, "method": "agent.getTree", "params": {}}))
            return json.loads(await ws.recv())

    assert asyncio.run(refused({}, thread_id))
    assert asyncio.run(refused(secured.headers_for("bob"), thread_id))
    mine = asyncio.run(tree(secured.headers_for("alice"), thread_id))
    assert mine["type"] == "success" and mine["result"]["tree"]["namespace"] == []
    fresh = asyncio.run(tree(secured.headers_for("bob"), str(uuid.uuid4())))
    assert fresh["error"] == "no_such_run"
    with secured.http("bob") as bob:
        taken = bob.post(f"/threads/{thread_id}/commands", json={
            "id": 1, "method": "run.start", "params": {"assistant_id": "echo"}})
        assert taken.status_code == 404 and thread_id in taken.json()["detail"]
