"""Importing what a langgraph.json names: "./path/to/file.py:name" (relative to the
project's folder) or "package.module:name". One loader for graphs, the auth entry,
the project's app (http.app) and store.index's embed function, so that each fails at
start-up with one line saying what to fix."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from runlane.errors import ConfigError


def is_file_location(location: str) -> bool:
    return location.endswith(".py") or "/" in location


def import_location(location: str, base: Path, where: str, name_prefix: str,
                    error: type[ConfigError] = ConfigError) -> ModuleType:
    """The module at `location` (a file relative to `base`, or a module name); `where`
    starts every error message; `name_prefix` names a file's module in sys.modules."""
    if not is_file_location(location):
        try:
            return importlib.import_module(location)
        except Exception as exc:
            raise error(f"{where}: importing module {location!r} failed: {exc!r}") from exc
    file_path = (base / location).resolve()
    if not file_path.is_file():
        raise error(f"{where}: file {file_path} does not exist")
    module_name = f"{name_prefix}_{abs(hash(str(file_path)))}"
    module_spec = importlib.util.spec_from_file_location(module_name, file_path)
    if module_spec is None or module_spec.loader is None:
        raise error(f"{where}: cannot import {file_path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise error(f"{where}: importing {file_path} failed: {exc!r}") from exc
    return module
