"""Every error runlane raises on purpose, in one tree; each knows how a client sees it.

    RunlaneError                    status   what the client reads
    ├── ConfigError                 (500)    runlane cannot start as configured; raised
    │   │                                    before it listens, never an HTTP answer
    │   ├── AuthConfigError                  --auth, or langgraph.json's "auth" entry
    │   │   ├── ApiKeyError                  RUNLANE_API_KEYS / --api-keys-file
    │   │   ├── JwtConfigError               RUNLANE_JWT_*
    │   │   └── CustomAuthError              the Auth object langgraph.json names
    │   └── CredentialError                  a runlane client's --header (cli, check)
    ├── BadRequest                   422     well-formed, but asks for the impossible
    │   └── BadSchedule                      a cron expression or timezone
    ├── BatchItemError               404/422 one item of POST /runs/batch (+ "index")
    ├── BadBody                      422     a request body runlane cannot read as JSON
    ├── AuthError                    401     no or wrong credentials (+ WWW-Authenticate),
    │                                        or the status a custom authenticate chose
    ├── Denied                       403     an authorization handler refused (or the
    │                                        status it raised)
    ├── NotFound                     404     missing, or another owner's: never 403
    ├── Conflict                     409     contradicts the current state
    │   ├── AlreadyFired                     a cron firing another worker created
    │   └── RunFenced                        a run's checkpoint write by a worker that
    │                                        may no longer write for it (never reaches
    │                                        a client: it stops the run's graph)
    ├── DatabaseUnavailable          503     the database is unreachable (+ Retry-After)
    ├── BadFilter                    500     an authorization handler returned something
    │                                        that is not a filter: its bug, logged
    └── EmbeddingMismatch            500     store.index's embedding function returned
                                             vectors that are not `dims` long, logged

The API answers every one of them the same way (api/app.py, api/responses.py:
`error_response`): the status, `{"detail": <detail>, **body}`, and the headers. A
cancel's 404/409 are not errors but outcomes of the run contract (contract.py).

Not in the tree, on purpose: signals that steer control flow and never reach a
client (streams/redis.py's StreamEnded, StreamGone, StreamUnavailable; the CLI's
Fail; the checker's Abort and UsageError). Each says why where it is defined.

No HTTP framework here: this module sits below every layer that raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class RunlaneError(Exception):
    """The base of every error runlane raises on purpose.

    `str(error)` is the message (for logs); `detail` is what the client reads, the
    same words unless a subclass says otherwise; `body` holds extra fields of the
    JSON answer, after `detail`; `headers` go on the response."""

    status_code: int = 500
    # Set on errors that are a bug on the server's side (in a handler it runs): the
    # words that open the log line the API writes when it answers one.
    log_as: ClassVar[str | None] = None

    def __init__(self, message: str, *, status_code: int | None = None,
                 headers: Mapping[str, str] | None = None, **body: Any) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code
        self.headers: dict[str, str] = dict(headers or {})
        self.body: dict[str, Any] = body

    @property
    def detail(self) -> str:
        return str(self)


# ------------------------------------------------------------ configuration


class ConfigError(RunlaneError):
    """runlane cannot start as configured; the message says what to fix."""


class AuthConfigError(ConfigError):
    """Auth cannot be set up as configured; the message says what to fix."""


class ApiKeyError(AuthConfigError):
    """The key configuration is unusable; the message says what to fix."""


class JwtConfigError(AuthConfigError):
    """The JWT configuration is unusable; the message says what to fix."""


class CustomAuthError(AuthConfigError):
    """The auth entry of langgraph.json is unusable; the message says what to fix."""


class CredentialError(ConfigError):
    """A --header that is not 'Name: value'."""


# ---------------------------------------------------------- the request's fault


class BadRequest(RunlaneError):
    """The request is well-formed but asks for something impossible (422)."""

    status_code = 422


class ConfigurableAndContext(BadRequest):
    """Both `config.configurable` and `context` given: the reference answers 400."""

    status_code = 400


class BadSchedule(BadRequest):
    """A cron schedule or timezone that cannot be scheduled."""


class BatchItemError(RunlaneError):
    """One item of a batch is invalid (nothing of the batch was created): answered
    with that item's own status (404 or 422), naming its index."""

    def __init__(self, index: int, error: NotFound | BadRequest) -> None:
        super().__init__(f"runs[{index}]: {error}; no run of the batch was created",
                         status_code=error.status_code, index=index)
        self.index = index
        self.error = error


class BadBody(RunlaneError):
    """A request body that is not JSON runlane can read and store (whatever its
    Content-Type): 422 for JSON that does not parse or nests too deep."""


class AuthError(RunlaneError):
    """Authentication refused: 401 (credentials missing or wrong) or whatever status
    a custom handler chose. `headers` go on the response (WWW-Authenticate)."""

    status_code = 401


class Denied(RunlaneError):
    """An authorization handler refused (403, or the status it raised)."""

    status_code = 403


class NotFound(RunlaneError):
    """The thing asked for does not exist (or is not visible)."""

    status_code = 404


class Conflict(RunlaneError):
    """The request contradicts the current state (409)."""

    status_code = 409


# ----------------------------------------------------------- the server's side


class AlreadyFired(Conflict):
    """A cron firing whose run another worker already created (or that no longer
    exists): the admission that would have created a second run is rolled back."""


class RunFenced(Conflict):
    """A checkpoint write of a run this worker may no longer write for: its lease is
    not held (no successful renewal for a whole lease, by this process's monotonic
    clock, which counts the time the process was stopped), or the run is no longer
    running on this worker in the database (it was reaped or adopted). The write did
    not land; the run is fenced (stopped without writing: its new owner, or the
    reaper, records its end). Raised inside the run's graph task, never to a client."""


class DatabaseUnavailable(RunlaneError):
    """The database cannot be reached right now (answered as 503). The message is
    the driver's, for the log; the client reads a fixed sentence."""

    status_code = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})

    @property
    def detail(self) -> str:
        return "the database is unreachable right now; retry shortly"


class BadFilter(RunlaneError):
    """A handler returned something that is not a filter (a bug in the handler)."""

    log_as = "authorization handler bug"

    @property
    def detail(self) -> str:
        return f"the server's authorization handler is misconfigured: {self}"


class EmbeddingMismatch(RunlaneError):
    """The embedding function of langgraph.json's `store.index` returned vectors of
    another length than its `dims`: the server's configuration, not the request."""

    log_as = "store.index misconfigured"
