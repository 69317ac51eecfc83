"""Pure helpers of the PostgreSQL adapter: SQL fragments, timeouts, TTL columns, the
bundled migrations."""

import pytest

from garrison.domain.errors import InvalidArgumentError
from garrison.storage.models import SortOrder
from garrison.storage.ports import TTLSpec
from garrison.storage.postgres.database import connect_timeout
from garrison.storage.postgres.migrate import (
    LOCK_KEY,
    latest_version,
    migration_scripts,
    vector_type_mismatch,
)
from garrison.storage.postgres.rows import order_by, qualified
from garrison.storage.postgres.threads import ttl_params

ALLOWED = frozenset({"created_at", "name"})


@pytest.mark.parametrize(
    ("column", "order", "expected"),
    [
        ("name", SortOrder.ASC, 'ORDER BY "name" ASC, "assistant_id" ASC'),
        ("created_at", SortOrder.DESC, 'ORDER BY "created_at" DESC, "assistant_id" DESC'),
    ],
)
def test_order_by_quotes_whitelisted_columns(column: str, order: SortOrder, expected: str) -> None:
    assert order_by(column, ALLOWED, order, "assistant_id").as_string() == expected


@pytest.mark.parametrize("column", ["password", "name; DROP TABLE runs", '"name"', ""])
def test_order_by_refuses_anything_else(column: str) -> None:
    with pytest.raises(InvalidArgumentError, match="Invalid sort_by"):
        order_by(column, ALLOWED, SortOrder.ASC, "assistant_id")


def test_qualified_prefixes_every_column() -> None:
    assert qualified("run_id, thread_id,\n status", "r") == "r.run_id, r.thread_id, r.status"


@pytest.mark.parametrize(("seconds", "expected"), [(0.5, 2), (2.0, 2), (2.1, 3), (5.0, 5)])
def test_connect_timeout_is_whole_seconds_of_at_least_two(seconds: float, expected: int) -> None:
    assert connect_timeout(seconds) == expected


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        (None, (None, None, None)),
        (TTLSpec("delete", 5), ("delete", 5, 300)),
        (TTLSpec("keep_latest", 0.5), ("keep_latest", 0.5, 30)),
    ],
)
def test_ttl_columns(ttl: TTLSpec | None, expected: tuple[object, ...]) -> None:
    assert ttl_params(ttl) == expected


def test_bundled_migrations_are_ordered_and_named() -> None:
    scripts = migration_scripts()
    assert [m.version for m in scripts] == list(range(1, len(scripts) + 1))
    assert all(m.name and m.sql.strip() for m in scripts)
    assert latest_version() == scripts[-1].version
    assert scripts[0].name == "initial" and "CREATE TABLE runs" in scripts[0].sql


def test_the_migration_lock_key_fits_a_bigint() -> None:
    assert 0 < LOCK_KEY < 2**63


@pytest.mark.parametrize(
    ("actual", "index", "fine"),
    [
        (None, {"dims": 64}, True),  # no vector table yet: `migrate` will create it
        ("vector(64)", {"dims": 64}, True),
        ("halfvec(64)", {"dims": 64, "ann_index_config": {"vector_type": "halfvec"}}, True),
        ("vector(64)", {"dims": 128}, False),
        ("vector(64)", {"dims": 64, "ann_index_config": {"vector_type": "halfvec"}}, False),
    ],
)
def test_vector_column_must_match_store_index(
    actual: str | None, index: dict[str, object], fine: bool
) -> None:
    problem = vector_type_mismatch(actual, index)
    assert (problem is None) is fine
    if problem:
        assert actual is not None and actual in problem and "garrison migrate" in problem
