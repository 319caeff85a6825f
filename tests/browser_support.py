"""The browser suites' machinery (tests/test_browser.py, tests/test_browser_v2.py): a
chat page (tests/browser/app, app_v2) built once per session with vite, served by a
static server on an origin of its own, and Debian's Chromium (/usr/bin/chromium) driven
by Playwright, a tab per test.

Where Chromium, Node.js or Playwright is missing the suite skips, saying what to
install; under RUNLANE_REQUIRE_SERVICES=1 or RUNLANE_CI=1 (.ci/run) it fails instead.
A failed step keeps a screenshot and the page's console log under
tests/browser/artifacts/ and names them in the failure message.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

BROWSER_DIR = Path(__file__).parent / "browser"
APP_DIR = BROWSER_DIR / "app"
DIST_DIR = APP_DIR / "dist"  # git-ignored, rebuilt every session
ARTIFACTS_DIR = BROWSER_DIR / "artifacts"  # git-ignored
INSTALLED = APP_DIR / "node_modules" / ".package-lock.json"  # written by npm ci
CHROMIUM = os.environ.get("RUNLANE_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 30_000  # any one condition in the page; a cluster on a busy machine is slow


def _required() -> bool:
    return bool(os.environ.get("RUNLANE_REQUIRE_SERVICES") or os.environ.get("RUNLANE_CI"))


def missing_tools() -> list[str]:
    """What the browser suite needs and cannot find here, each with how to get it."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"Chromium at {CHROMIUM} (`apt-get install chromium`)")
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing.append("Node.js 20+ and npm on PATH (they build the chat page)")
    else:
        version = subprocess.run([node, "--version"], check=False, capture_output=True,
                                 text=True).stdout.strip()
        major = version.lstrip("v").split(".")[0]
        if not major.isdigit() or int(major) < 20:
            missing.append(f"Node.js 20+ (found {version or 'an unknown version'})")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (`pip install -e '.[dev]'`)")
    return missing


def require_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    message = ("browser suite skipped: no " + "; no ".join(missing)
               + ". See docs/testing.md, 'The browser suite'.")
    if _required():
        pytest.fail(message.replace("skipped", "cannot run"), pytrace=False)
    pytest.skip(message)


def build_app(app_dir: Path = APP_DIR) -> Path:
    """`npm ci` when node_modules is missing or older than the lockfile, then
    `vite build` into dist/ (of tests/browser/app, or another page such as app_v2).
    One at a time, should two sessions share this checkout."""
    npm = shutil.which("npm")
    assert npm is not None
    guard = Path(tempfile.gettempdir()) / f"runlane-browser-build-{os.getuid()}.lock"
    installed = app_dir / "node_modules" / ".package-lock.json"  # written by npm ci
    with open(guard, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        lock = app_dir / "package-lock.json"
        if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
            _run([npm, "ci", "--no-audit", "--no-fund"], "npm ci (it needs the npm registry)",
                 app_dir)
        _run([npm, "run", "--silent", "build"], "vite build", app_dir)
    dist = app_dir / "dist"
    assert (dist / "index.html").exists(), f"vite build left no {dist / 'index.html'}"
    return dist


def _run(command: list[str], what: str, app_dir: Path) -> None:
    proc = subprocess.run(command, check=False, cwd=app_dir, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, (
        f"{what} in {app_dir} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # the page's requests are not the test's output


@contextlib.contextmanager
def static_server(root: Path) -> Iterator[str]:
    """Serves `root` on 127.0.0.1 at a port of its own: another origin than runlane's."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def playwright_expect() -> Any:
    """Playwright's `expect` (imported late: the suite skips where Playwright is missing)."""
    from playwright.sync_api import expect

    return expect


def assert_growing(states: list[str], final: str) -> None:
    """Each recorded state of a streamed answer a prefix of the next and of `final`."""
    for before, after in itertools.pairwise(states):
        assert after.startswith(before), f"the answer went back from {before!r} to {after!r}"
    assert all(final.startswith(state) for state in states), states


def page_url(origin: str, api: str, **params: Any) -> str:
    return f"{origin}/index.html?{urlencode({'api': api, **params})}"


def clear_artefacts() -> None:
    shutil.rmtree(ARTIFACTS_DIR, ignore_errors=True)


def artefact_stem(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")


class ChatPage:
    """One browser tab on the chat page, with the page's console kept for artefacts.
    `step(name)` wraps what a test does: a failure inside it saves a screenshot and
    the console log, and names both in the failure message."""

    def __init__(self, page: Any, origin: str, api: str, name: str) -> None:
        self.page = page
        self.origin = origin
        self.api = api
        self.name = name
        self.console: list[str] = []
        self.requests: list[str] = []  # "METHOD url" of every request to runlane
        page.on("console", lambda msg: self.console.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", lambda exc: self.console.append(f"[pageerror] {exc}"))
        page.on("request", self._request)

    def _request(self, request: Any) -> None:
        if request.url.startswith(self.api):
            self.requests.append(f"{request.method} {request.url[len(self.api):]}")

    def open(self, **params: Any) -> None:
        self.page.goto(page_url(self.origin, self.api, **params))
        self.page.get_by_test_id("status").wait_for()

    def reload(self, api: str | None = None) -> None:
        """Reload the tab; with `api`, the same page pointed at another server URL (on
        a cluster: another worker, as a load balancer may pick after a reload)."""
        if api is None or api == self.api:
            self.page.reload()
            return
        url = urlsplit(self.page.url)
        query = dict(parse_qsl(url.query))
        self.api = query["api"] = api
        self.page.goto(urlunsplit(url._replace(query=urlencode(query))))

    def tid(self, test_id: str) -> Any:
        return self.page.get_by_test_id(test_id)

    def messages(self, kind: str | None = None) -> Any:
        selector = "[data-testid=message]" + (f"[data-type={kind}]" if kind else "")
        return self.page.locator(selector)

    def texts(self) -> list[tuple[str, str]]:
        """(type, text) of every message shown."""
        return [tuple(item) for item in self.page.eval_on_selector_all(
            "[data-testid=message]",
            "els => els.map(e => [e.dataset.type,"
            " e.querySelector('[data-testid=message-text]').textContent])")]

    def send(self, text: str) -> None:
        self.tid("input").fill(text)
        self.tid("send").click()

    def wait_words(self, count: int) -> None:
        """Until the last AI message shows at least `count` words."""
        self.page.wait_for_function(
            """n => {
              const all = document.querySelectorAll(
                '[data-testid=message][data-type=ai] [data-testid=message-text]');
              return all.length > 0
                && all[all.length - 1].textContent.split(/\\s+/).filter(Boolean).length >= n;
            }""", arg=count)

    def record_ai_text(self) -> None:
        """From now on, record every distinct text the last AI message shows (a
        MutationObserver in the page, so no state between two polls is missed)."""
        self.page.evaluate(_RECORDER)

    def record_ai_text_on_load(self) -> None:
        """As record_ai_text, in every document this tab loads from now on (a reload)."""
        self.page.add_init_script(f"({_RECORDER})()")

    def recorded(self) -> list[str]:
        return list(self.page.evaluate("window.__aiTexts || []"))

    def save_artefacts(self, step: str) -> list[Path]:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        stem = ARTIFACTS_DIR / f"{self.name}-{re.sub(r'[^A-Za-z0-9_-]+', '_', step)}"
        saved = []
        shot = stem.with_suffix(".png")
        try:
            self.page.screenshot(path=str(shot), full_page=True)
            saved.append(shot)
        except Exception as exc:  # noqa: BLE001 - a crashed page: the console log still helps
            self.console.append(f"[runlane-test] no screenshot: {exc}")
        log = stem.with_suffix(".console.log")
        log.write_text("\n".join([*self.console, "--- requests to runlane ---",
                                  *self.requests]) + "\n")
        saved.append(log)
        return saved

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            saved = self.save_artefacts(name)
            raise AssertionError(
                f"browser step {name!r} failed: {exc}\nartefacts: "
                + ", ".join(str(path) for path in saved)) from exc


# Kept as a list of distinct texts, in order: each mutation of the page re-reads the
# last AI message; the same text twice in a row is one state.
_RECORDER = """() => {
  window.__aiTexts = [];
  const read = () => {
    const all = document.querySelectorAll(
      '[data-testid=message][data-type=ai] [data-testid=message-text]');
    const text = all.length ? all[all.length - 1].textContent : null;
    const seen = window.__aiTexts;
    if (text !== null && seen[seen.length - 1] !== text) seen.push(text);
  };
  new MutationObserver(read).observe(document,
    {subtree: true, childList: true, characterData: true});
  read();
}"""
