"""`runlane serve`: start the server on the graphs a langgraph.json names."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from rich.console import Console

from runlane import __version__

# Serving imports (langgraph, the store) load inside `_serve`: the client commands
# (`runlane runs ...`) start in a fraction of a second.

console = Console(stderr=True)


def _serve(args: argparse.Namespace) -> int:
    from runlane.errors import AuthConfigError, ConfigError
    from runlane.graphs import load_all, read_config
    from runlane.observability import logs
    from runlane.settings import Settings
    from runlane.webhook_policy import override

    settings = Settings.from_env(
        config=args.config, host=args.host, port=args.port, database_url=args.database_url,
        redis_url=args.redis_url, max_concurrency=args.max_concurrency,
        lease_seconds=args.lease_seconds, log_level=args.log_level,
        log_format=args.log_format, shutdown_grace=args.shutdown_grace,
        keep_alive_timeout=args.keep_alive_timeout, backlog=args.backlog,
        auth=args.auth, api_keys_file=args.api_keys_file, jwt_public_key=args.jwt_public_key,
        jwt_algorithms=args.jwt_algorithms, jwt_issuer=args.jwt_issuer,
        jwt_audience=args.jwt_audience, jwt_identity_claim=args.jwt_identity_claim,
        db_pool_size=args.db_pool_size, checkpoint_pool_size=args.checkpoint_pool_size,
        item_pool_size=args.item_pool_size,
    )
    if settings.log_format not in ("text", "json"):
        console.print(f"[bold red]runlane: cannot start:[/] unknown log format "
                      f"{settings.log_format!r}: use text or json", highlight=False)
        return 2
    log_config = logs.dict_config(settings.log_format, settings.log_level)
    logs.configure(settings.log_format, settings.log_level)
    workers = args.workers or 1
    if workers > 1 and settings.resolved_database_url().startswith("sqlite"):
        console.print("[bold red]runlane: cannot start:[/] --workers needs a shared database: "
                      "SQLite is for one process; pass --database-url postgresql://...",
                      highlight=False)
        return 2
    if problems := settings.redis_pool_problems():
        console.print(f"[bold red]runlane: cannot start:[/] {'; '.join(problems)}",
                      highlight=False)
        return 2
    if not settings.resolved_database_url().startswith("sqlite") and not settings.redis_url:
        console.print("[bold red]runlane: cannot start:[/] with PostgreSQL, runs stream across "
                      "workers through Redis: pass --redis-url redis://host:6379/0",
                      highlight=False)
        return 2
    try:
        # Settings read by the app's routes: refused here with a message, not a traceback.
        from runlane.api.chosen_ids import check_policy
        from runlane.api.system import check_metrics_token

        check_policy(settings.chosen_ids)
        check_metrics_token(settings.metrics_token)
        project = read_config(settings.config)
        project.webhooks = override(project.webhooks, **settings.webhook_overrides())
        graphs = {gid: loaded.graph for gid, loaded in load_all(project).items()}
    except ConfigError as exc:
        console.print(f"[bold red]runlane: cannot start:[/] {exc}", highlight=False)
        return 2
    from runlane.api.auth.setup import NO_AUTH_WARNING, build_authenticator, is_loopback

    try:
        auth = build_authenticator(settings, project.path, project.auth)
    except AuthConfigError as exc:
        console.print(f"[bold red]runlane: cannot start:[/] {exc}", highlight=False)
        return 2
    if auth[0] is None and not is_loopback(settings.host):
        # Loud on purpose: on stderr for whoever started it, and in the log.
        warning = NO_AUTH_WARNING.format(host=settings.host)
        if settings.log_format == "text":  # JSON logs: every stderr line is JSON
            console.print(f"[bold yellow on red] WARNING [/] [bold yellow]{warning}[/]",
                          highlight=False)
        logging.getLogger("runlane").warning(warning, extra={"event": "no_auth"})
    import uvicorn

    from runlane.api.app import served_app

    try:
        # Built here whatever the number of workers: a project app (http.app) that
        # does not import stops start-up with one line, before any worker starts.
        app = served_app(settings, graphs, auth, project.http, project.webhooks,
                         project.path.parent, (project.store, project.thread_ttl))
    except ConfigError as exc:
        console.print(f"[bold red]runlane: cannot start:[/] {exc}", highlight=False)
        return 2

    if settings.log_format == "text":  # JSON logs: every line on stderr is JSON
        console.print(
            f"[bold green]runlane {__version__}[/] serving {', '.join(graphs)} on "
            f"http://{settings.host}:{settings.port} with {workers} worker(s) "
            f"([dim]{_redacted(settings.resolved_database_url())}[/])",
            highlight=False,
        )
    # uvicorn applies log_config in every worker process it starts. It waits for open
    # responses as long as a drain may take (runs finishing, then interrupted). (The
    # `type: ignore[arg-type]` below: `common` mixes value types, each its parameter's.)
    common = {"host": settings.host, "port": settings.port, "log_level": "warning",
              "log_config": log_config, "access_log": False,
              "timeout_keep_alive": settings.keep_alive_timeout, "backlog": settings.backlog,
              "timeout_graceful_shutdown": int(settings.shutdown_grace
                                               + settings.cancel_grace) + 2}
    if workers == 1:
        uvicorn.run(app, **common)  # type: ignore[arg-type]
    else:
        # Each worker process builds its own app from the same settings.
        os.environ.update(settings.to_env())
        uvicorn.run("runlane.api.app:create_app_from_env", factory=True, workers=workers,
                    **common)  # type: ignore[arg-type]
    return 0


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runlane",
                                     description="A LangGraph-compatible agent server")
    parser.add_argument("--version", action="version", version=f"runlane {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the graphs of a langgraph.json")
    serve.add_argument("--config", type=Path, default=None, help="default ./langgraph.json")
    serve.add_argument("--host", default=None, help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default 2024")
    serve.add_argument("--database-url", default=None,
                       help="default: a SQLite file under .runlane/ beside the config")
    serve.add_argument("--max-concurrency", type=int, default=None,
                       help="runs executing at once; more wait as pending (default: 1000 "
                            "on SQLite, 64 per worker on PostgreSQL)")
    serve.add_argument("--redis-url", default=None,
                       help="scale-out: Redis for run events across workers")
    serve.add_argument("--workers", type=int, default=None,
                       help="worker processes on this host (needs PostgreSQL; default 1)")
    serve.add_argument("--lease-seconds", type=float, default=None,
                       help="scale-out: a worker's lease on a run (default 6)")
    serve.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default=None, choices=["text", "json"],
                       help="text (default) or json: one JSON object per line "
                            "(RUNLANE_LOG_FORMAT)")
    serve.add_argument("--shutdown-grace", type=float, default=None,
                       help="on SIGTERM, seconds active runs may go on before they are "
                            "interrupted (default 10; RUNLANE_SHUTDOWN_GRACE)")
    serve.add_argument("--keep-alive-timeout", type=float, default=None,
                       help="seconds an idle keep-alive connection stays open (default 75; "
                            "RUNLANE_KEEP_ALIVE_TIMEOUT)")
    serve.add_argument("--backlog", type=int, default=None,
                       help="connections the kernel queues while the server is busy "
                            "(default 4096, capped by net.core.somaxconn; RUNLANE_BACKLOG)")
    pools = serve.add_argument_group(
        "PostgreSQL connections per worker",
        "A worker holds at most db + checkpoint + item pool sizes + 1 (its LISTEN "
        "connection); see docs/scale-out.md for the budget.")
    pools.add_argument("--db-pool-size", type=int, default=None,
                       help="database threads, one connection each (default 3; "
                            "RUNLANE_DB_POOL_SIZE)")
    pools.add_argument("--checkpoint-pool-size", type=int, default=None,
                       help="the checkpointer's pool (default 2; RUNLANE_CHECKPOINT_POOL_SIZE)")
    pools.add_argument("--item-pool-size", type=int, default=None,
                       help="the item store's pool (default 1; RUNLANE_ITEM_POOL_SIZE)")
    auth = serve.add_argument_group(
        "authentication", "Secrets are read from the environment only (RUNLANE_API_KEYS, "
        "RUNLANE_JWT_SECRET), never from flags, so they stay out of `ps`.")
    auth.add_argument("--auth", default=None, choices=["none", "api-key", "jwt", "custom"],
                      help="how callers authenticate (RUNLANE_AUTH); default: custom when "
                           "langgraph.json has an \"auth\" entry, else none")
    auth.add_argument("--api-keys-file", default=None,
                      help="api-key: file of identity=key lines (RUNLANE_API_KEYS_FILE); "
                           "keys may also come from RUNLANE_API_KEYS='alice=KEY,bob=KEY'")
    auth.add_argument("--jwt-public-key", default=None,
                      help="jwt: PEM public key or PEM file for RS*/ES*/PS*/EdDSA "
                           "(RUNLANE_JWT_PUBLIC_KEY); HS* use RUNLANE_JWT_SECRET")
    auth.add_argument("--jwt-algorithms", default=None,
                      help="jwt: accepted algorithms, comma-separated (RUNLANE_JWT_ALGORITHMS; "
                           "default HS256 with a secret, RS256,ES256 with a key)")
    auth.add_argument("--jwt-issuer", default=None, help="jwt: required iss (RUNLANE_JWT_ISSUER)")
    auth.add_argument("--jwt-audience", default=None,
                      help="jwt: required aud (RUNLANE_JWT_AUDIENCE)")
    auth.add_argument("--jwt-identity-claim", default=None,
                      help="jwt: the claim naming the caller (RUNLANE_JWT_IDENTITY_CLAIM; "
                           "default sub)")
    serve.set_defaults(func=_serve)
    from runlane.cli.client import add_parsers as add_client_parsers

    add_client_parsers(sub)
    from runlane.checker.options import add_arguments as add_check_arguments

    add_check_arguments(sub.add_parser(
        "check", help="check a LangGraph-compatible server against the run contract"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
