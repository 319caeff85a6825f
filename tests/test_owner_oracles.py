"""What one owner can learn about another's objects: nothing (docs/auth.md, "What
another owner can learn: nothing"). Real servers with API keys, on SQLite and on 3
PostgreSQL workers, under both RUNLANE_CHOSEN_IDS policies.

bob asks with alice's ids, then with ids nobody uses, and the two answers must be
the same: same status, same body once ids and timestamps are blanked out, same
pagination headers. Every oracle the issue names and the ones found beside them:
creating a thread or assistant with her id (under `refuse`; under `allow`, the
answer is exactly the one his own taken ids get, and never her object), a run
that would create her thread, her runs (get, cancel, join, stream, delete), her
crons, her store items, her Idempotency-Keys, copy, prune, bulk cancel, batch; and
what must not change when she creates, runs and stores more: his searches, counts
and their X-Pagination-Total, his namespaces, /info; /metrics is the operator's."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from auth_support import METRICS_HEADERS, Secured, secured_server, server_args
from conftest import BACKENDS, ServerProcess

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
ECHO = {"assistant_id": "echo", "input": {"text": "x"}}
LONG = {"assistant_id": "sleepy", "input": {"steps": 3000, "delay": 0.1}}


@pytest.fixture(scope="module", params=[(b, p) for b in BACKENDS for p in ("refuse", "allow")],
                ids=lambda p: f"{p[1]}-{p[0]}")
def secured(request: pytest.FixtureRequest) -> Iterator[Secured]:
    backend, policy = request.param
    with secured_server("api-key", backend, env={"RUNLANE_CHOSEN_IDS": policy}) as server:
        server.policy = policy  # type: ignore[attr-defined]
        yield server


def blank(value: Any) -> Any:
    """`value` with every id and timestamp replaced by a placeholder."""
    if isinstance(value, str):
        return TIME_RE.sub("<time>", UUID_RE.sub("<id>", value))
    if isinstance(value, dict):
        return {blank(k): blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return [blank(v) for v in value]
    return value


def answer(resp: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    """What a caller can observe of an answer: status, body (ids and times blanked),
    the headers that count things."""
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    headers = {k: v for k, v in resp.headers.items()
               if k.lower() in ("x-pagination-total", "x-pagination-next", "www-authenticate")}
    return resp.status_code, blank(body), headers


def send(api: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    if method == "GET" and url.endswith("/stream"):
        with api.stream("GET", url, **kwargs) as resp:
            resp.read()
            return resp
    return api.request(method, url, **kwargs)


@pytest.fixture(scope="module")
def alice(secured: Secured) -> dict[str, str]:
    """alice's objects: a thread with a finished run, a thread with a running run, an
    assistant, a cron, a store item, and Idempotency-Keys she used for a thread and
    a run."""
    with secured.http("alice") as api:
        tid = api.post("/threads", json={"metadata": {"secret": "alice"}}).json()["thread_id"]
        done = api.post(f"/threads/{tid}/runs/wait", json=ECHO)
        assert done.status_code == 200, done.text
        run_id = api.get(f"/threads/{tid}/runs").json()[0]["run_id"]
        checkpoint_id = api.get(f"/threads/{tid}/state").json()["checkpoint_id"]
        busy = api.post("/threads", json={}).json()["thread_id"]
        active = api.post(f"/threads/{busy}/runs", json=LONG).json()["run_id"]
        assistant = api.post("/assistants", json={"graph_id": "echo", "name": "hers",
                                                  "metadata": {"secret": "alice"}}).json()
        cron = api.post(f"/threads/{tid}/runs/crons", json={
            "assistant_id": "echo", "schedule": "0 0 1 1 *"}).json()["cron_id"]
        root, key = str(uuid.uuid4()), str(uuid.uuid4())
        assert api.put("/store/items", json={"namespace": [root, "notes"], "key": key,
                                             "value": {"secret": "alice"}}).status_code == 204
        thread_key, same_key, run_key = (f"alice-{uuid.uuid4()}" for _ in range(3))
        keyed = api.post("/threads", json={"metadata": {"k": 1}},
                         headers={"Idempotency-Key": thread_key})
        assert keyed.status_code == 200, keyed.text
        same = api.post("/threads", json={"metadata": {"same": 1}},
                        headers={"Idempotency-Key": same_key})
        assert same.status_code == 200, same.text
        keyed_run = api.post(f"/threads/{tid}/runs", json=ECHO,
                             headers={"Idempotency-Key": run_key})
        assert keyed_run.status_code == 200, keyed_run.text
        deadline = time.monotonic() + 30
        while api.get(f"/threads/{busy}/runs/{active}").json()["status"] != "running":
            assert time.monotonic() < deadline, "alice's long run never started"
            time.sleep(0.05)
    return {"thread_id": tid, "run_id": run_id, "checkpoint_id": checkpoint_id,
            "busy_thread_id": busy, "active_run_id": active,
            "assistant_id": assistant["assistant_id"], "cron_id": cron, "root": root,
            "key": key, "thread_key": thread_key, "same_key": same_key, "run_key": run_key,
            "keyed_thread_id": keyed.json()["thread_id"],
            "same_thread_id": same.json()["thread_id"]}


def _fresh(ids: dict[str, str]) -> dict[str, str]:
    """Ids (and keys) of the same kinds that nobody uses."""
    return {k: (f"alice-{uuid.uuid4()}" if k.endswith("_key") else str(uuid.uuid4()))
            for k in ids}


# Requests bob makes with alice's ids, or with unused ones: (method, url, json). Each
# is made with both and must be answered the same. `{own}` is a thread of bob's.
Probe = tuple[str, str, Any]
ABSENT: list[Probe] = [
    ("GET", "/threads/{thread_id}", None),
    ("GET", "/threads/{thread_id}/state", None),
    ("POST", "/threads/{thread_id}/history", {}),
    ("PATCH", "/threads/{thread_id}", {"metadata": {"x": 1}}),
    ("POST", "/threads/{thread_id}/copy", None),
    ("GET", "/threads/{thread_id}/stream", None),
    ("POST", "/threads/{thread_id}/runs", ECHO),
    ("POST", "/threads/{thread_id}/runs/wait", ECHO),
    ("POST", "/threads/{busy_thread_id}/runs", {**ECHO, "multitask_strategy": "reject"}),
    ("GET", "/threads/{thread_id}/runs", None),
    ("GET", "/threads/{thread_id}/runs/{run_id}", None),
    ("GET", "/threads/{busy_thread_id}/runs/{active_run_id}/join", None),
    ("GET", "/threads/{busy_thread_id}/runs/{active_run_id}/stream", None),
    ("POST", "/threads/{busy_thread_id}/runs/{active_run_id}/cancel", None),
    ("POST", "/threads/{busy_thread_id}/runs/{active_run_id}/cancel?wait=true", None),
    ("DELETE", "/threads/{thread_id}/runs/{run_id}", None),
    # Her run ids on bob's own thread, as a run that is not on it.
    ("GET", "/threads/{own}/runs/{active_run_id}", None),
    ("POST", "/threads/{own}/runs/{active_run_id}/cancel", None),
    ("POST", "/runs/cancel", {"thread_id": "{busy_thread_id}", "run_ids": ["{active_run_id}"]}),
    ("POST", "/runs/cancel", {"thread_id": "{busy_thread_id}"}),
    ("POST", "/threads/prune", {"thread_ids": ["{thread_id}"], "strategy": "delete"}),
    ("POST", "/threads/search", {"ids": ["{thread_id}", "{busy_thread_id}"]}),
    ("POST", "/runs/batch", [{**ECHO, "checkpoint": {"thread_id": "{thread_id}",
                                                     "checkpoint_id": "{checkpoint_id}"}}]),
    ("GET", "/threads/{thread_id}/state/{checkpoint_id}", None),
    ("POST", "/runs", {**ECHO, "assistant_id": "{assistant_id}"}),
    ("GET", "/assistants/{assistant_id}", None),
    ("PATCH", "/assistants/{assistant_id}", {"name": "x"}),
    ("POST", "/assistants/{assistant_id}/versions", {}),
    ("POST", "/threads/{thread_id}/runs/crons", {"assistant_id": "echo",
                                                 "schedule": "0 0 1 1 *"}),
    ("PATCH", "/runs/crons/{cron_id}", {"enabled": False}),
    ("DELETE", "/runs/crons/{cron_id}", None),
    ("POST", "/runs/crons/search", {"thread_id": "{thread_id}"}),
    ("POST", "/runs/crons/count", {"thread_id": "{thread_id}"}),
    ("GET", "/store/items?namespace={root}.notes&key={key}", None),
    ("POST", "/store/items/search", {"namespace_prefix": ["{root}"]}),
    ("POST", "/store/namespaces", {"prefix": ["{root}"]}),
    ("DELETE", "/store/items", {"namespace": ["{root}", "notes"], "key": "{key}"}),
]
# Creations that name one of her ids: the same answer as for a free id only when
# callers may not choose ids (RUNLANE_CHOSEN_IDS=refuse); see test_chosen_ids_allow.
CREATIONS: list[Probe] = [
    ("POST", "/threads", {"thread_id": "{thread_id}"}),
    ("POST", "/threads", {"thread_id": "{thread_id}", "if_exists": "do_nothing"}),
    ("POST", "/assistants", {"graph_id": "echo", "assistant_id": "{assistant_id}"}),
    ("POST", "/assistants", {"graph_id": "echo", "assistant_id": "{assistant_id}",
                             "if_exists": "do_nothing"}),
    ("POST", "/threads/{thread_id}/runs", {**ECHO, "if_not_exists": "create"}),
    ("POST", "/threads/{busy_thread_id}/runs/wait", {**ECHO, "if_not_exists": "create"}),
    ("POST", "/threads/{thread_id}/runs/stream", {**ECHO, "if_not_exists": "create"}),
]


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), m.group(0)), template)
    if isinstance(template, dict):
        return {k: _fill(v, ids) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, ids) for v in template]
    return template


def _probe(bob: httpx.Client, probe: Probe, ids: dict[str, str]) -> tuple[Any, str]:
    method, url, body = probe
    kwargs = {} if body is None else {"json": _fill(body, ids)}
    resp = send(bob, method, _fill(url, ids), **kwargs)
    return answer(resp), resp.text


def _same_as_absent(secured: Secured, alice: dict[str, str], probes: list[Probe]) -> None:
    with secured.http("bob") as bob:
        own = bob.post("/threads", json={}).json()["thread_id"]
        for probe in probes:
            theirs, text = _probe(bob, probe, {**alice, "own": own})
            nobody, _ = _probe(bob, probe, {**_fresh(alice), "own": own})
            assert theirs == nobody, (probe, theirs, nobody)
            assert "secret" not in text and "hers" not in text, (probe, text)


def test_her_objects_answer_as_absent_ones(secured: Secured, alice: dict[str, str]) -> None:
    """Every route that takes one of her ids: the answer bob gets equals the answer
    for an id nobody uses (status, body, counting headers)."""
    _same_as_absent(secured, alice, ABSENT)


def test_creating_with_her_ids_answers_as_a_free_id(secured: Secured,
                                                   alice: dict[str, str]) -> None:
    """RUNLANE_CHOSEN_IDS=refuse: a creation naming her thread or assistant id (any
    if_exists, or a run's if_not_exists=create) answers exactly as one naming a free
    id: 422, saying what to do instead. bob's own ids still work as usual."""
    if secured.policy != "refuse":  # type: ignore[attr-defined]
        pytest.skip("under `allow` a free id is created: see test_chosen_ids_allow")
    _same_as_absent(secured, alice, CREATIONS)
    with secured.http("bob") as bob:
        refused = bob.post("/threads", json={"thread_id": str(uuid.uuid4())})
        assert refused.status_code == 422 and "leave thread_id out" in refused.text
        own = bob.post("/threads", json={"metadata": {"mine": 1}}).json()
        again = bob.post("/threads", json={"thread_id": own["thread_id"],
                                           "if_exists": "do_nothing"})
        assert again.status_code == 200 and again.json() == own, again.text
        taken = bob.post("/threads", json={"thread_id": own["thread_id"]})
        assert taken.status_code == 409, taken.text
        ran = bob.post(f"/threads/{own['thread_id']}/runs/wait",
                       json={**ECHO, "if_not_exists": "create"})
        assert ran.status_code == 200, ran.text
    with secured.http("alice") as api:  # and nothing of hers changed
        assert api.get(f"/threads/{alice['thread_id']}").json()["metadata"]["secret"] == "alice"


def test_chosen_ids_allow(secured: Secured, alice: dict[str, str]) -> None:
    """RUNLANE_CHOSEN_IDS=allow (the default, as the reference server): naming her
    id answers exactly as naming an id of bob's own that is taken (409, same words
    but the id), whatever if_exists: never her object, nothing about it. That it is
    in use is the one thing it says (docs/auth.md)."""
    if secured.policy != "allow":  # type: ignore[attr-defined]
        pytest.skip("under `refuse` see test_creating_with_her_ids_answers_as_a_free_id")
    with secured.http("bob") as bob:
        own_thread = bob.post("/threads", json={}).json()["thread_id"]
        own_assistant = bob.post("/assistants", json={"graph_id": "echo"}).json()["assistant_id"]
        mine = {**alice, "thread_id": own_thread, "assistant_id": own_assistant}
        for probe in CREATIONS:
            theirs, text = _probe(bob, probe, alice)
            assert theirs[0] == 409, (probe, text)
            assert "secret" not in text and "hers" not in text, (probe, text)
            if probe[1].startswith("/threads/{") or "do_nothing" in str(probe[2]):
                continue  # on his own thread a run is created; do_nothing: his object
            ours, _ = _probe(bob, probe, mine)
            assert theirs == ours, (probe, theirs, ours)


def test_idempotency_keys_are_per_owner(secured: Secured, alice: dict[str, str]) -> None:
    """bob using the keys alice used (same body, or another) gets what a key nobody
    used gets: a new object of his own, never hers, never a 'key reused' 422."""
    fresh = _fresh(alice)
    with secured.http("bob") as bob:
        own = bob.post("/threads", json={}).json()["thread_id"]
        # Her key with another body than hers (a "reused" key, were it his), and her
        # other key with exactly her body.
        for key, body, hers in (("thread_key", {"metadata": {"k": 2}}, "keyed_thread_id"),
                                ("same_key", {"metadata": {"same": 1}}, "same_thread_id")):
            theirs = bob.post("/threads", json=body, headers={"Idempotency-Key": alice[key]})
            nobody = bob.post("/threads", json=body, headers={"Idempotency-Key": fresh[key]})
            assert answer(theirs) == answer(nobody), (theirs.text, nobody.text)
            assert theirs.json()["thread_id"] != alice[hers]
            # A retry of bob's is his own first answer.
            retry = bob.post("/threads", json=body, headers={"Idempotency-Key": alice[key]})
            assert retry.json() == theirs.json()
        theirs = bob.post(f"/threads/{own}/runs", json=ECHO,
                          headers={"Idempotency-Key": alice["run_key"]})
        nobody = bob.post(f"/threads/{own}/runs", json=ECHO,
                          headers={"Idempotency-Key": fresh["run_key"]})
        assert (theirs.status_code, blank(theirs.json())["status"]) == (
            nobody.status_code, blank(nobody.json())["status"]), (theirs.text, nobody.text)
        assert theirs.json()["thread_id"] == own


def _views(secured: Secured) -> dict[str, Any]:
    """Everything bob and an anonymous caller see that could count alice's objects."""
    seen: dict[str, Any] = {}
    with secured.http("bob") as bob:
        for name, (method, url, body) in {
            "threads": ("POST", "/threads/search", {"limit": 2}),
            "threads_all": ("POST", "/threads/search", {"limit": 1000}),
            "threads_busy": ("POST", "/threads/search", {"status": "busy"}),
            "thread_count": ("POST", "/threads/count", {}),
            "assistants": ("POST", "/assistants/search", {"limit": 1000}),
            "assistant_count": ("POST", "/assistants/count", {}),
            "crons": ("POST", "/runs/crons/search", {"limit": 1000}),
            "cron_count": ("POST", "/runs/crons/count", {}),
            "namespaces": ("POST", "/store/namespaces", {"limit": 1000}),
            "items": ("POST", "/store/items/search", {"limit": 1000}),
            "cancel_running": ("POST", "/runs/cancel", {"status": "running"}),
            "info": ("GET", "/info", None),
            "metrics": ("GET", "/metrics", None),
        }.items():
            resp = bob.request(method, url, **({} if body is None else {"json": body}))
            seen[name] = answer(resp)
    with secured.http(None) as anonymous:
        seen["info_anonymous"] = answer(anonymous.get("/info"))
        seen["metrics_anonymous"] = answer(anonymous.get("/metrics"))
    return seen


def test_her_activity_changes_nothing_bob_sees(secured: Secured, alice: dict[str, str]) -> None:
    """bob's searches (and their X-Pagination-Total), counts, namespaces, /info (his
    and an anonymous caller's), /metrics: the same before and after alice creates
    threads, assistants, crons, store items and starts runs. /metrics is closed to
    users (their credentials do not open it) and open to the operator's token."""
    with secured.http("bob") as bob:  # bob has objects of his own, so pages are not empty
        for _ in range(3):
            tid = bob.post("/threads", json={}).json()["thread_id"]
            bob.post(f"/threads/{tid}/runs/wait", json=ECHO)
        bob.put("/store/items", json={"namespace": ["b"], "key": "k", "value": {}})
        deadline = time.monotonic() + 30  # his runs over: his threads change no more
        while bob.post("/threads/search", json={"status": "busy"}).json():
            assert time.monotonic() < deadline, "bob's runs did not end"
            time.sleep(0.1)
    before = _views(secured)
    assert "active_runs" not in before["info"][1] and before["info"] == before["info_anonymous"]
    assert before["metrics"][0] == 401 and before["metrics_anonymous"][0] == 401
    started: list[tuple[str, str]] = []
    with secured.http("alice") as api:
        for i in range(4):
            tid = api.post("/threads", json={"metadata": {"n": i}}).json()["thread_id"]
            started.append((tid, api.post(f"/threads/{tid}/runs", json=LONG).json()["run_id"]))
            api.post("/assistants", json={"graph_id": "echo"})
            api.post("/runs/crons", json={"assistant_id": "echo", "schedule": "0 0 1 1 *"})
            api.put("/store/items", json={"namespace": [f"ns{i}"], "key": "k", "value": {}})
        deadline = time.monotonic() + 30
        while not all(api.get(f"/threads/{t}/runs/{r}").json()["status"] == "running"
                      for t, r in started):
            assert time.monotonic() < deadline, "alice's runs did not start"
            time.sleep(0.1)
        after = _views(secured)
        for tid, run_id in started:
            api.post(f"/threads/{tid}/runs/{run_id}/cancel")
    assert after == before
    with httpx.Client(timeout=30, headers=METRICS_HEADERS) as operator:
        for url in secured.urls:
            scraped = operator.get(f"{url}/metrics")
            assert scraped.status_code == 200 and "runlane_runs" in scraped.text


def test_metrics_token_and_policy_settings(tmp_path: Any) -> None:
    """/metrics: with auth on and no token, closed to everyone (users included); with
    auth off and a token, closed without it; with auth off and no token, open. A
    short token or an unknown RUNLANE_CHOSEN_IDS stops the start with a message.
    (One SQLite process each: the route is the same on every backend.)"""
    args, headers_for, _ = server_args("api-key", tmp_path)
    secured = ServerProcess(tmp_path / "no-token", *args).start()
    try:
        for headers in ({}, headers_for("alice"), METRICS_HEADERS):
            closed = httpx.get(f"{secured.url}/metrics", headers=headers, timeout=30)
            assert closed.status_code == 401, closed.text
            assert "RUNLANE_METRICS_TOKEN" in closed.json()["detail"]
            assert closed.headers["www-authenticate"] == "Bearer"
        assert "active_runs" not in httpx.get(f"{secured.url}/info", timeout=30).json()
    finally:
        secured.stop()
    token_env = {"RUNLANE_METRICS_TOKEN": METRICS_HEADERS["authorization"].split()[1]}
    plain = ServerProcess(tmp_path / "token", env=token_env).start()
    try:
        assert httpx.get(f"{plain.url}/metrics", timeout=30).status_code == 401
        wrong = httpx.get(f"{plain.url}/metrics", timeout=30,
                          headers={"authorization": "Bearer " + "x" * 30})
        assert wrong.status_code == 401
        assert httpx.get(f"{plain.url}/metrics", headers=METRICS_HEADERS,
                         timeout=30).status_code == 200
        assert "active_runs" in httpx.get(f"{plain.url}/info", timeout=30).json()
    finally:
        plain.stop()
    for env, said in (({"RUNLANE_METRICS_TOKEN": "short"}, "at least 16"),
                      ({"RUNLANE_CHOSEN_IDS": "maybe"}, "allow, refuse")):
        with pytest.raises(RuntimeError) as failed:
            ServerProcess(tmp_path / f"bad-{len(said)}", env=env).start()
        assert said in str(failed.value), failed.value
