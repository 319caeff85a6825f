"""Settings from flags and RUNLANE_* environment variables."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from runlane.store.database import sqlite_file


@dataclasses.dataclass
class Settings:
    config: Path = Path("langgraph.json")
    host: str = "127.0.0.1"
    port: int = 2024
    database_url: str | None = None
    max_concurrency: int = 64
    cancel_grace: float = 5.0
    max_body_bytes: int = 16 * 1024 * 1024
    log_level: str = "info"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {}
        if "RUNLANE_CONFIG" in env:
            values["config"] = Path(env["RUNLANE_CONFIG"])
        for name, cast in (("host", str), ("port", int), ("database_url", str),
                           ("max_concurrency", int), ("cancel_grace", float),
                           ("max_body_bytes", int), ("log_level", str)):
            key = f"RUNLANE_{name.upper()}"
            if key in env:
                values[name] = cast(env[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        directory = self.config.resolve().parent / ".runlane"
        return f"sqlite:///{directory / 'runlane.sqlite'}"

    def checkpoint_path(self) -> str:
        """Checkpoints go in a file beside the database: `<name>-checkpoints.sqlite`."""
        path = sqlite_file(self.resolved_database_url())
        if path is None or path == ":memory:":
            return ":memory:"
        return str(Path(path).with_name(Path(path).stem + "-checkpoints.sqlite"))
