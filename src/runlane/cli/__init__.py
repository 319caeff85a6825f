"""The `runlane` command: `serve` (main.py), the client subcommands `runs`, `threads`
... (client.py), and `check` (runlane.checker)."""

from runlane.cli.main import main

__all__ = ["main"]
