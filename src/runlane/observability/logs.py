"""Logging: readable text by default, one JSON object per line with
`--log-format json` (RUNLANE_LOG_FORMAT=json).

Every record carries the worker id of the process and, inside a run's tasks, the
run id and thread id (context variables the executor sets when it starts a run, so
a graph's own log lines carry them too). `dict_config` is handed to uvicorn, which
applies it in every worker process it starts (`--workers N`).

`run_status` is the one way a run's status change is logged: called once per
transition, where the store's compare-and-set confirmed it, with its cause.
`failure_logged` is how a best-effort step fails: logged, never silently dropped.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import orjson

from runlane.observability import metrics
from runlane.records import Run

RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("runlane_run_id", default=None)
THREAD_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "runlane_thread_id", default=None)
_worker_id: str | None = None

# LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}  # uvicorn: the message with ANSI colours

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def set_worker(worker_id: str) -> None:
    global _worker_id  # noqa: PLW0603 - set once as a worker starts, read by every log line
    _worker_id = worker_id


def run_context(run: Run) -> contextvars.Context:
    """A copy of the current context in which log records name `run`."""
    context = contextvars.copy_context()
    context.run(RUN_ID.set, run.run_id)
    context.run(THREAD_ID.set, run.thread_id)
    return context


class ContextFilter(logging.Filter):
    """Adds worker_id, run_id and thread_id to records that do not carry them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "worker_id", None) is None:
            record.worker_id = _worker_id
        if getattr(record, "run_id", None) is None:
            record.run_id = RUN_ID.get()
        if getattr(record, "thread_id", None) is None:
            record.thread_id = THREAD_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the ids that apply,
    any `extra` fields, and the exception's traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return orjson.dumps(entry, default=str).decode()


def dict_config(log_format: str, level: str) -> dict[str, Any]:
    """The logging configuration of every process: runlane's, uvicorn's and the
    graphs' loggers all go to stderr in one format."""
    formatter: dict[str, Any] = (
        {"()": "runlane.observability.logs.JsonFormatter"} if log_format == "json"
        else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "runlane.observability.logs.ContextFilter"}},
        "formatters": {"runlane": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "runlane", "filters": ["context"]}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            # uvicorn's own loggers propagate to the root handler (one format).
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure(log_format: str, level: str) -> None:
    import logging.config

    logging.config.dictConfig(dict_config(log_format, level))
    logging.captureWarnings(True)  # warnings too go through the handler (JSON lines)


@contextlib.contextmanager
def failure_logged(logger: logging.Logger, what: str, *args: Any,
                   level: int = logging.WARNING) -> Iterator[None]:
    """For a best-effort step whose failure must not stop its caller (a cleanup, a
    notice that a later check backs up): an exception is logged at `level` as
    "<what> failed (<Type>: <message>)", then swallowed. `what` is %-formatted with
    `args`. Cancellation (BaseException) still propagates."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - any failure of a best-effort step, logged
        logger.log(level, what + " failed (%s: %s)", *args, type(exc).__name__, exc)


# --------------------------------------------------------------- run statuses

_runs_log = logging.getLogger("runlane.runs")


def run_status(run: Run, previous: str | None, *, cause: str | None = None,
               level: int = logging.INFO, exc: BaseException | None = None,
               **details: Any) -> None:
    """Log one confirmed status change of `run` (as the store returned it) and
    count it. `previous` is the status it left (its text). `cause` defaults to the
    run's stop_reason; a cancel names who asked (cancel_reason); `details` add e.g.
    superseded_by, taken_over_by. `exc`, what the graph raised, adds its type and
    message to the line and its traceback after it."""
    status = run.status.value
    cancel_action = None if run.cancel_action is None else run.cancel_action.value
    cause = cause or run.stop_reason or "unknown"
    fields: dict[str, Any] = {
        "event": "run_status", "run_id": run.run_id, "thread_id": run.thread_id,
        "from_status": previous, "status": status, "cause": cause,
    }
    for key, value in (("stop_reason", run.stop_reason), ("cancel_action", cancel_action),
                       ("cancel_reason", run.cancel_reason)):
        if value is not None:
            fields[key] = value
    fields.update({k: v for k, v in details.items() if v is not None})
    why = cause
    if run.cancel_reason:
        why = f"{cause}, {cancel_action or 'cancel'} by {run.cancel_reason}"
    extra = "".join(f", {k}={v}" for k, v in details.items() if v is not None)
    if exc is not None:
        fields["error"] = type(exc).__name__
        extra += f": {type(exc).__name__}: {exc}"
        notes = getattr(exc, "__notes__", None)
        if notes:
            extra += f" ({'; '.join(map(str, notes))})"
    _runs_log.log(level, "run %s %s -> %s (%s%s)", run.run_id, previous or "new", status,
                  why, extra, extra=fields,
                  exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None)
    metrics.run_transition(status, cause)
