"""LangGraph's own checkpointer conformance suite, run against the savers Garrison ships."""

from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import Capability

from garrison.storage.sqlite import SqliteStorage


@pytest.mark.parametrize("capability", [c.value for c in Capability])
async def test_sqlite_checkpointer_conforms(tmp_path: Path, capability: str) -> None:
    counter = iter(range(1000))

    @checkpointer_test(name="GarrisonSqliteSaver")
    async def sqlite_saver() -> AsyncGenerator[BaseCheckpointSaver[str], None]:
        # A fresh database file per capability suite, as the conformance runner expects.
        storage = await SqliteStorage.open(tmp_path / f"conformance-{next(counter)}.sqlite")
        try:
            yield storage.checkpointer
        finally:
            await storage.close()

    report = await validate(sqlite_saver, capabilities={capability})
    result = report.results[capability]
    assert result.detected, f"{capability} is not implemented"
    assert result.tests_passed > 0 and result.passed, result.failures
