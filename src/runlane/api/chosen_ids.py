"""Ids a caller chooses for a new thread or assistant, with auth on.

Ids are global (one `thread_id` column, one checkpointer key), so a creation that
names an id another owner uses cannot succeed. What it answers is the one thing
that could tell a caller about another owner's objects (docs/auth.md, "What another
owner can learn: nothing"); RUNLANE_CHOSEN_IDS decides it:

- `allow` (the default, as the reference server): a free id is created; an id in use
  answers 409 "<kind> <id> already exists", the same status and words whoever uses
  it (the caller included), and never the other owner's object, whatever
  `if_exists`. That says the id is in use by someone, nothing more. With the ids
  the server and the SDKs generate (random UUIDs) nobody can hit another's id
  without having been told it.
- `refuse`: a creation that names an id which is not already the caller's own is
  422, free or taken alike, so no answer depends on another owner's ids. The
  caller's own ids work as usual (`if_exists`, `if_not_exists` on its own thread).

With auth off there are no owners, and ids are chosen freely either way.
"""

from __future__ import annotations

from starlette.requests import Request

from runlane.errors import BadRequest, ConfigError
from runlane.owners import owner_of

POLICIES = ("allow", "refuse")


def check_policy(value: str) -> str:
    if value not in POLICIES:
        raise ConfigError(f"RUNLANE_CHOSEN_IDS: {value!r} is not a policy; accepted: "
                          f"{', '.join(POLICIES)} (see docs/auth.md)")
    return value


def _refusing(request: Request) -> bool:
    return (owner_of(request) is not None
            and request.app.state.settings.chosen_ids == "refuse")


def _refused(what: str, instead: str) -> BadRequest:
    return BadRequest(f"{what}: this server does not let a caller choose the id of a new "
                      "object (RUNLANE_CHOSEN_IDS=refuse, so that an id someone else uses "
                      f"answers exactly as a free one); {instead}")


async def check_new_thread_id(request: Request, thread_id: str, *, by_run: bool = False) -> None:
    """Under `refuse`: a thread id the caller names for creation must be its own
    already (then the creation answers as usual), else 422, free or taken alike."""
    if not _refusing(request):
        return
    store = request.app.state.runlane.store
    if await store.get_thread(thread_id, owner=owner_of(request)) is None:
        if by_run:
            raise _refused(f"if_not_exists='create' on thread {thread_id}",
                           "create the thread with POST /threads without a thread_id first, "
                           "and run on the id it answers")
        raise _refused(f"thread_id {thread_id}",
                       "leave thread_id out and use the id the answer carries")


async def check_new_assistant_id(request: Request, assistant_id: str) -> None:
    """As check_new_thread_id, for an assistant (the shared default assistants are
    visible to every caller: naming one answers 409 as usual)."""
    if not _refusing(request):
        return
    store = request.app.state.runlane.store
    if await store.get_assistant(assistant_id, owner=owner_of(request)) is None:
        raise _refused(f"assistant_id {assistant_id}",
                       "leave assistant_id out and use the id the answer carries")
