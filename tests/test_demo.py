"""`make run`'s demo: the README's first example, run as written against the demo
project, prints what the README says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "examples" / "demo" / "langgraph.json"

# The lines the README's comments promise, in order.
PRINTED = [
    "[get_weather: sunny, 21 °C in Paris]",
    "Here is what I found. get_weather: sunny, 21 °C in Paris",
    "Once upon a time a small agent lived on a(10) server and",
    "interrupted recorded",
    "interrupted already_interrupted",
]


def first_example() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert match, "the README has no python example"
    return match.group(1)


@pytest.fixture
def demo_server(tmp_path: Path):
    # A later --config wins: the demo project instead of the test graphs.
    proc = ServerProcess(tmp_path, "--config", str(DEMO_CONFIG)).start()
    yield proc
    proc.stop()


def test_the_readme_example_prints_what_it_says(demo_server, tmp_path):
    code = first_example()
    for line in PRINTED:
        assert f"# {line}" in code, f"the README no longer shows {line!r}"
    script = tmp_path / "example.py"
    script.write_text(code.replace("http://127.0.0.1:2024", demo_server.url))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == PRINTED
