"""Pure domain decisions, table-driven."""

import uuid

import pytest

from garrison.domain.errors import ConflictError, InvalidArgumentError
from garrison.domain.ids import parse_uuid, system_assistant_id, uuid7
from garrison.domain.jsonfilter import json_contains
from garrison.domain.runs import (
    ActiveRun,
    CancelAction,
    CancelEffect,
    MultitaskStrategy,
    RunStatus,
    cancel_step,
    parse_cancel_action,
    plan_multitask,
)
from garrison.domain.threads import ThreadStatus, derive_thread_status

PENDING = ActiveRun("p", RunStatus.PENDING)
RUNNING = ActiveRun("r", RunStatus.RUNNING)


@pytest.mark.parametrize(
    ("strategy", "active", "expected"),
    [
        (MultitaskStrategy.ENQUEUE, [RUNNING, PENDING], []),
        (MultitaskStrategy.REJECT, [], []),
        (MultitaskStrategy.INTERRUPT, [], []),
        (
            MultitaskStrategy.INTERRUPT,
            [RUNNING, PENDING],
            [
                ("r", CancelAction.INTERRUPT, CancelEffect.SIGNAL),
                ("p", CancelAction.INTERRUPT, CancelEffect.MARK_INTERRUPTED),
            ],
        ),
        (
            MultitaskStrategy.ROLLBACK,
            [RUNNING, PENDING],
            [
                ("r", CancelAction.ROLLBACK, CancelEffect.SIGNAL),
                ("p", CancelAction.ROLLBACK, CancelEffect.DELETE),
            ],
        ),
    ],
)
def test_plan_multitask(
    strategy: MultitaskStrategy,
    active: list[ActiveRun],
    expected: list[tuple[str, CancelAction, CancelEffect]],
) -> None:
    steps = plan_multitask(strategy, active)
    assert [(s.run_id, s.action, s.effect) for s in steps] == expected


def test_reject_on_a_busy_thread_conflicts() -> None:
    with pytest.raises(ConflictError, match="already running"):
        plan_multitask(MultitaskStrategy.REJECT, [PENDING])


@pytest.mark.parametrize(
    ("run", "action", "effect"),
    [
        (PENDING, CancelAction.INTERRUPT, CancelEffect.MARK_INTERRUPTED),
        (PENDING, CancelAction.ROLLBACK, CancelEffect.DELETE),
        (RUNNING, CancelAction.INTERRUPT, CancelEffect.SIGNAL),
        (RUNNING, CancelAction.ROLLBACK, CancelEffect.SIGNAL),
    ],
)
def test_cancel_step(run: ActiveRun, action: CancelAction, effect: CancelEffect) -> None:
    assert cancel_step(run, action).effect is effect


@pytest.mark.parametrize(
    ("raw", "action"),
    [
        ("rollback", CancelAction.ROLLBACK),
        ("interrupt", CancelAction.INTERRUPT),
        ("nonsense", CancelAction.INTERRUPT),
        (None, CancelAction.INTERRUPT),
    ],
)
def test_unknown_cancel_actions_mean_interrupt(raw: str | None, action: CancelAction) -> None:
    assert parse_cancel_action(raw) is action


@pytest.mark.parametrize(
    ("active", "failed", "has_next", "status"),
    [
        (True, True, True, ThreadStatus.BUSY),
        (False, True, True, ThreadStatus.ERROR),
        (False, False, True, ThreadStatus.INTERRUPTED),
        (False, False, False, ThreadStatus.IDLE),
        (True, False, False, ThreadStatus.BUSY),
    ],
)
def test_thread_status(active: bool, failed: bool, has_next: bool, status: ThreadStatus) -> None:
    derived = derive_thread_status(
        has_active_runs=active, last_run_failed=failed, has_next_tasks=has_next
    )
    assert derived is status


@pytest.mark.parametrize(
    ("document", "pattern", "contained"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": {"b": {"c": 1}, "d": 2}}, {"a": {"b": {"c": 1}}}, True),
        ({"tags": ["x", "y", "z"]}, {"tags": ["z", "x"]}, True),
        ({"tags": ["x"]}, {"tags": ["q"]}, False),
        ({"items": [{"id": 1, "n": "a"}]}, {"items": [{"id": 1}]}, True),
        ({"a": 1}, {}, True),
        ({}, {"a": None}, False),
        ({"a": None}, {"a": None}, True),
        ({"flag": True}, {"flag": 1}, False),  # JSON booleans are not numbers
        ({"n": 1}, {"n": 1.0}, True),
        (["a", "b"], "a", True),  # top-level array contains a scalar
        ({"list": ["a"]}, {"list": "a"}, False),  # ...but only at the top level
        ({"a": [1, 2]}, {"a": {"0": 1}}, False),
    ],
)
def test_json_contains_like_postgres(document: object, pattern: object, contained: bool) -> None:
    assert json_contains(document, pattern) is contained


def test_system_assistant_ids_match_langgraph_server() -> None:
    # The id LangGraph Server gives the default assistant of a graph named "agent".
    assert system_assistant_id("agent") == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"


def test_uuid7_is_a_version_7_uuid_and_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(2000)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_parse_uuid() -> None:
    assert parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "id") == (
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    )
    with pytest.raises(InvalidArgumentError, match="thread_id"):
        parse_uuid("nope", "thread_id")
