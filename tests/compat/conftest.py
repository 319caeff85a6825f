"""The compatibility suite: every public langgraph_sdk client method against a real
server, runlane by default, or the reference LangGraph server (`langgraph dev` from
langgraph-cli[inmem]) with RUNLANE_COMPAT_REFERENCE=1 (`make test-compat-ref`).

`server` below starts the suite's own server, so the rows it leaves behind (hundreds
of threads and assistants, crons that fire) never reach other suites: for runlane,
one process on SQLite and three workers on PostgreSQL + Redis (as the root conftest's
`server`; RUNLANE_TEST_BACKENDS narrows it); for the reference, one `langgraph dev` on
the same test graphs.

Each test carries `@pytest.mark.compat(area, *sdk_methods)`. status.json records,
per test and target, whether it passed when the results were last regenerated
(`make compat-report`); a test recorded as failing on the current target runs as a
strict xfail, so the suite stays green while a feature is missing and turns red the
moment a recorded failure starts passing (then regenerate the record).
RUNLANE_COMPAT_RAW=1 ignores the record: plain pass/fail, as the report needs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BACKENDS, ServerProcess

ROOT = Path(__file__).resolve().parents[2]
GRAPHS_DIR = ROOT / "tests" / "graphs"
STATUS_FILE = Path(__file__).parent / "status.json"
REFERENCE = os.environ.get("RUNLANE_COMPAT_REFERENCE") == "1"
RAW = os.environ.get("RUNLANE_COMPAT_RAW") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "compat(area, *sdk_methods): a compatibility test of these langgraph_sdk "
        "client methods (e.g. 'threads.copy'), grouped by feature area")


def target_of(item: pytest.Item) -> str | None:
    """'sqlite', 'postgres' or 'reference': the server a compat test item talks to."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("server") if callspec else None


def test_key(item: pytest.Item) -> str:
    return f"{item.path.name}::{item.originalname}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if RAW or not STATUS_FILE.exists():
        return
    recorded = json.loads(STATUS_FILE.read_text())
    here = Path(__file__).parent
    for item in items:
        if item.path.parent != here:
            continue
        status = recorded.get(test_key(item), {}).get(target_of(item) or "")
        if status == "fail":
            item.add_marker(pytest.mark.xfail(
                strict=True,
                reason=f"recorded as failing on {target_of(item)} (tests/compat/status.json, "
                       "docs/compatibility.md); passing now? run `make compat-report`"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Fail a compat test whose body passed but whose answers were not shaped as the
    SDK declares (see compat.shapes.found)."""
    from compat import shapes

    shapes.found.clear()
    outcome = yield
    message = shapes.shape_failure()
    shapes.found.clear()
    if message and outcome.excinfo is None and item.path.parent == Path(__file__).parent:
        outcome.force_exception(AssertionError(message))


# Package scope: the suite's servers stop once its last test has run, not at the end
# of the session (a PostgreSQL cluster kept idle holds ~21 of the database's
# connections while the rest of the session starts servers of its own).
@pytest.fixture(scope="package", params=["reference"] if REFERENCE else BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[object]:
    if request.param == "reference":
        yield from _reference_server()
        return
    with tempfile.TemporaryDirectory(prefix="runlane-compat-") as tmp:
        if request.param == "sqlite":
            proc = ServerProcess(Path(tmp)).start()
            try:
                yield proc
            finally:
                proc.stop()
            return
        from cluster import Cluster, require_services

        require_services()
        cluster = Cluster(Path(tmp), 3)
        try:  # close() also when start() fails: no stray workers, no leftover database
            yield cluster.start()
        finally:
            cluster.close()


def _reference_server() -> Iterator[object]:
    """One reference server (`langgraph dev`, in-memory) on a copy of tests/graphs."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from servers import DEFAULT_REF_VENV, Server, ensure_ref_venv, free_port

    exe = ensure_ref_venv(Path(os.environ.get("RUNLANE_REF_VENV", DEFAULT_REF_VENV)))
    with tempfile.TemporaryDirectory(prefix="runlane-compat-ref-") as tmp:
        project = Path(tmp) / "graphs"
        # `langgraph dev` keeps its state in ./.langgraph_api: a fresh copy each session.
        shutil.copytree(GRAPHS_DIR, project, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        # The reference refuses loopback webhook URLs unless its config allows them;
        # the webhook test's receiver listens on 127.0.0.1.
        config = json.loads((project / "langgraph.json").read_text())
        config["webhooks"] = {"url": {"disable_loopback": False, "require_https": False}}
        (project / "langgraph.json").write_text(json.dumps(config))
        port = free_port()
        # --n-jobs-per-worker 10: the dev default executes one run at a time, which
        # would queue the runs of unrelated threads behind each other.
        ref = Server("reference", [str(exe), "dev", "--no-browser", "--no-reload",
                                   "--port", str(port), "--config", "langgraph.json",
                                   "--n-jobs-per-worker", "10"],
                     project, port, env={"LOG_LEVEL": "WARNING"})
        ref.is_reference = True  # type: ignore[attr-defined]
        ref.start()
        try:
            yield ref
        finally:
            ref.stop()


@pytest.fixture
def is_reference(server: object) -> bool:
    """Whether this test talks to the reference server (for the documented differences)."""
    return bool(getattr(server, "is_reference", False))
