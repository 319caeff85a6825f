"""Turn compat-suite results (JUnit XML from pytest) into docs/compatibility.md and
tests/compat/status.json.

    python tests/compat/report.py tests/compat/results/runlane.xml \
        tests/compat/results/reference.xml

`make compat-report` runs the suite against runlane (SQLite and PostgreSQL) and
against the reference server with RUNLANE_COMPAT_RAW=1 (plain pass/fail, no
recorded statuses), writes those two XML files, and calls this script. Each test id
ends in its target, e.g. `test_copy[sqlite]`, `test_copy[reference]`.

Only the part of docs/compatibility.md between the GENERATED markers is rewritten;
the prose around it is kept.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from compat.sdk_surface import PROTOCOL_METHODS, compat_tests, sdk_methods  # noqa: E402 - after sys.path

DOC = ROOT / "docs" / "compatibility.md"
STATUS = HERE / "status.json"
TARGETS = ("sqlite", "postgres", "reference")
TARGET_NAMES = {"sqlite": "runlane (SQLite)", "postgres": "runlane (PostgreSQL, 3 workers)",
                "reference": "reference (langgraph dev)"}
BEGIN, END = "<!-- GENERATED: begin (tests/compat/report.py) -->", "<!-- GENERATED: end -->"
# Failure messages that mean "this server has no such feature yet", not "it is wrong".
MISSING = re.compile(r"no such route|not supported yet|method not allowed|"
                     r"in-memory runtime|404 Not Found' for url .*/commands|501 Not Implemented")


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PORT = re.compile(r"127\.0\.0\.1:\d+")


class Outcome:
    def __init__(self, passed: bool, message: str = "") -> None:
        self.passed = passed
        # ids and ports differ per run and per target; without them equal failures
        # read equal (and are said once)
        self.message = PORT.sub("<server>", UUID.sub("<id>", " ".join(message.split())))

    @property
    def kind(self) -> str:
        if self.passed:
            return "pass"
        if self.message.startswith("AssertionError: shape:"):
            return "shape"  # it did what it says; the answer's shape differs from the SDK's
        if MISSING.search(self.message):
            return "missing"
        return "fail"


def read(paths: list[Path]) -> dict[str, dict[str, Outcome]]:
    """test key (`file::name`) -> target -> outcome."""
    results: dict[str, dict[str, Outcome]] = defaultdict(dict)
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            match = re.fullmatch(r"(\w+)\[(\w+)\]", case.get("name", ""))
            if not match or match.group(2) not in TARGETS:
                continue
            key = f"{case.get('classname', '').rsplit('.', 1)[-1]}.py::{match.group(1)}"
            problem = case.find("failure")
            if case.find("skipped") is not None or case.find("error") is not None:
                # not run there: skipped (e.g. no PostgreSQL), or its setup failed (the
                # server did not start): no status rather than a wrong one
                continue
            results[key][match.group(2)] = Outcome(
                problem is None, "" if problem is None else problem.get("message", ""))
    return results


LABEL = {"pass": "✅ pass", "fail": "❌ fail", "shape": "🟡 shape", "missing": "⛔ missing"}


def cell(outcomes: list[Outcome]) -> str:
    if not outcomes:
        return "–"
    kinds = [o.kind for o in outcomes]
    worst = next(k for k in ("fail", "missing", "shape", "pass") if k in kinds)
    passed = kinds.count("pass")
    if passed == len(kinds) or passed == 0:
        return LABEL[worst]
    return f"{LABEL[worst]} ({passed}/{len(kinds)})"


def note(outcome: Outcome | None) -> str:
    if outcome is None or outcome.passed:
        return ""
    text = outcome.message.replace("|", "\\|")
    return text[:160] + ("…" if len(text) > 160 else "")


def render(results: dict[str, dict[str, Outcome]]) -> str:
    tests = compat_tests()
    targets = [t for t in TARGETS if any(t in r for r in results.values())]
    by_method: dict[str, list[str]] = defaultdict(list)
    for key, (_, methods) in tests.items():
        for method in methods:
            by_method[method].append(key)

    generated = (f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from "
                 f"{sum(len(r) for r in results.values())} test results.")
    out = [BEGIN, "", generated, ""]
    out += ["| target | tests | ✅ pass | 🟡 shape only | ⛔ missing | ❌ fail |",
            "|---|---|---|---|---|---|"]
    for target in targets:
        kinds = [r[target].kind for r in results.values() if target in r]
        out.append(f"| {TARGET_NAMES[target]} | {len(kinds)} | {kinds.count('pass')} | "
                   f"{kinds.count('shape')} | {kinds.count('missing')} | {kinds.count('fail')} |")
    out += ["", "### Every SDK method", "",
            "A method's cell is the worst outcome of the tests that exercise it (passed/run).", "",
            "| SDK method | tests | " + " | ".join(TARGET_NAMES[t] for t in targets) + " |",
            "|---|---|" + "---|" * len(targets)]
    for method in [*sdk_methods(), *PROTOCOL_METHODS]:
        keys = by_method.get(method, [])
        cells = [cell([results[k][t] for k in keys if t in results.get(k, {})]) for t in targets]
        protocol, _, name = method.partition(".")
        label = (f"{protocol.upper()} `{name}`" if method in PROTOCOL_METHODS
                 else f"`client.{method}`")
        out.append(f"| {label} | {len(keys)} | " + " | ".join(cells) + " |")
    out += ["", "### Every test", "",
            "Area, outcome per target, and the first line of each failure.", "",
            "| test | area | " + " | ".join(targets) + " | why it failed |",
            "|---|---|" + "---|" * len(targets) + "---|"]
    for key in sorted(tests):
        area = tests[key][0]
        row = results.get(key, {})
        by_note: dict[str, list[str]] = defaultdict(list)
        for t in targets:
            if note(row.get(t)):
                by_note[note(row.get(t))].append(t)
        notes = "; ".join(f"{', '.join(ts)}: {text}" for text, ts in by_note.items())
        out.append(f"| `{key}` | {area} | " + " | ".join(
            LABEL[row[t].kind].split()[0] if t in row else "–" for t in targets) + f" | {notes} |")
    out += ["", END]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted((HERE / "results").glob("*.xml"))
    results = read(paths)
    if not results:
        print(f"no compat results in {[str(p) for p in paths]}", file=sys.stderr)
        return 1
    STATUS.write_text(json.dumps(
        {key: {t: "pass" if o.passed else "fail" for t, o in sorted(row.items())}
         for key, row in sorted(results.items())}, indent=1) + "\n")
    text = DOC.read_text() if DOC.exists() else f"# Compatibility\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        print(f"{DOC} lacks the GENERATED markers", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + render(results) + tail)
    print(f"wrote {DOC.relative_to(ROOT)} and {STATUS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
