"""The run contract's table (contract.py), spelled out here row by row: a change to
any edge, status code or classification fails a test that names it."""

from __future__ import annotations

import pytest

from runlane.contract import (
    ACTIVE,
    FINISHED_WITHOUT_CANCEL,
    TERMINAL,
    TRANSITIONS,
    CancelAction,
    CancelOutcome,
    RunStatus,
    cancel_http_status,
    outcome_for_existing_run,
    parse_bool,
)

S = RunStatus
# Every allowed (from, to) edge of a run's life, and no other.
EDGES = {
    (S.PENDING, S.RUNNING),  # claimed, or started at admission
    (S.PENDING, S.INTERRUPTED),  # cancelled before it started
    (S.PENDING, S.ERROR),  # could not start (e.g. its graph is gone)
    (S.RUNNING, S.SUCCESS),
    (S.RUNNING, S.ERROR),
    (S.RUNNING, S.TIMEOUT),
    (S.RUNNING, S.INTERRUPTED),
}


def test_every_status_is_either_active_or_terminal() -> None:
    assert set(RunStatus) == ACTIVE | TERMINAL
    assert not ACTIVE & TERMINAL
    assert {S.PENDING, S.RUNNING} == ACTIVE
    assert TERMINAL - {S.INTERRUPTED} == FINISHED_WITHOUT_CANCEL


def test_transitions_are_exactly_the_contracts_edges() -> None:
    assert set(TRANSITIONS) == set(RunStatus)
    edges = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
    assert edges == EDGES


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_terminal_statuses_are_absorbing(status: RunStatus) -> None:
    assert TRANSITIONS[status] == frozenset()


@pytest.mark.parametrize("status", sorted(RunStatus))
def test_no_run_goes_back_to_pending_or_stays_in_place(status: RunStatus) -> None:
    assert S.PENDING not in TRANSITIONS[status]
    assert status not in TRANSITIONS[status]


# The contract's HTTP table: (outcome, wait) -> status code.
HTTP = {
    (CancelOutcome.RECORDED, False): 202, (CancelOutcome.RECORDED, True): 200,
    (CancelOutcome.ALREADY_RECORDED, False): 202, (CancelOutcome.ALREADY_RECORDED, True): 200,
    (CancelOutcome.ALREADY_INTERRUPTED, False): 202,
    (CancelOutcome.ALREADY_INTERRUPTED, True): 200,
    (CancelOutcome.ROLLED_BACK, False): 202, (CancelOutcome.ROLLED_BACK, True): 200,
    (CancelOutcome.TOO_LATE, False): 409, (CancelOutcome.TOO_LATE, True): 409,
    (CancelOutcome.NOT_FOUND, False): 404, (CancelOutcome.NOT_FOUND, True): 404,
}


def test_the_http_table_covers_every_outcome_both_ways() -> None:
    assert set(HTTP) == {(outcome, wait) for outcome in CancelOutcome for wait in (False, True)}


@pytest.mark.parametrize(("outcome", "wait"), sorted(HTTP))
def test_cancel_http_status(outcome: CancelOutcome, wait: bool) -> None:
    assert cancel_http_status(outcome, wait=wait) == HTTP[outcome, wait]


# A row a cancel's compare-and-set did not change: (status, cancel_action) -> outcome.
EXISTING = [
    (S.PENDING, "interrupt", CancelOutcome.ALREADY_RECORDED),
    (S.PENDING, "rollback", CancelOutcome.ALREADY_RECORDED),
    (S.RUNNING, "interrupt", CancelOutcome.ALREADY_RECORDED),
    (S.RUNNING, "rollback", CancelOutcome.ALREADY_RECORDED),
    (S.INTERRUPTED, "interrupt", CancelOutcome.ALREADY_INTERRUPTED),
    (S.INTERRUPTED, None, CancelOutcome.ALREADY_INTERRUPTED),
    (S.SUCCESS, None, CancelOutcome.TOO_LATE),
    (S.ERROR, None, CancelOutcome.TOO_LATE),
    (S.TIMEOUT, None, CancelOutcome.TOO_LATE),
    # A cancel recorded too late to win (the run ended by itself first, e.g. a reap
    # of a rollback's owner): terminal still decides.
    (S.SUCCESS, "interrupt", CancelOutcome.TOO_LATE),
    (S.ERROR, "interrupt", CancelOutcome.TOO_LATE),
]


def test_every_status_has_an_existing_run_case() -> None:
    assert {status for status, _, _ in EXISTING} == set(RunStatus)
    assert {action for _, action, _ in EXISTING} >= {a.value for a in CancelAction}


@pytest.mark.parametrize(("status", "cancel_action", "outcome"), EXISTING)
def test_outcome_for_existing_run(status: RunStatus, cancel_action: str | None,
                                  outcome: CancelOutcome) -> None:
    assert outcome_for_existing_run(status, cancel_action) is outcome


@pytest.mark.parametrize("status", sorted(ACTIVE))
def test_an_active_run_without_a_cancel_is_not_an_existing_run_case(status: RunStatus) -> None:
    # The CAS would have matched it: reaching here is a bug, and must not pass silently.
    with pytest.raises(AssertionError):
        outcome_for_existing_run(status, None)


@pytest.mark.parametrize(("text", "value"), [
    ("1", True), ("true", True), ("TRUE", True), (" True ", True),
    ("0", False), ("false", False), ("False", False), (" 0\n", False),
])
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["", "yes", "no", "2", "t", "f", "on", "truee", "1.0"])
def test_parse_bool_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="expected a boolean"):
        parse_bool(text)
