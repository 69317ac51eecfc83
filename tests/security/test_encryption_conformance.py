"""LangGraph's checkpointer conformance suite with encryption on, on both savers: sealing
every value, write and metadata key must not change what the saver's API returns (history
filters on sealed metadata keys included)."""

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import Capability

from garrison.storage.sqlite import SqliteStorage
from tests.contract.conftest import (  # noqa: F401 - fixtures
    PostgresDatabases,
    open_postgres,
    postgres_databases,
    postgres_template,
)
from tests.security.test_encryption_at_rest import KEY_1, KEY_2, encryption

CAPABILITIES = [c.value for c in Capability]


async def _check(saver: object, capability: str) -> None:
    report = await validate(saver, capabilities={capability})  # type: ignore[arg-type]
    result = report.results[capability]
    assert result.detected, f"{capability} is not implemented"
    assert result.tests_passed > 0 and result.passed, result.failures


@pytest.mark.parametrize("capability", CAPABILITIES)
async def test_encrypted_sqlite_checkpointer_conforms(tmp_path: Path, capability: str) -> None:
    counter = iter(range(1000))

    @checkpointer_test(name="GarrisonSqliteSaver+encryption")
    async def sqlite_saver() -> AsyncGenerator[BaseCheckpointSaver[str], None]:
        path = tmp_path / f"conformance-{next(counter)}.sqlite"
        storage = await SqliteStorage.open(path, encryption=encryption(KEY_2, KEY_1))
        try:
            yield storage.checkpointer
        finally:
            await storage.close()

    await _check(sqlite_saver, capability)


@pytest.mark.parametrize("capability", CAPABILITIES)
async def test_encrypted_postgres_checkpointer_conforms(
    request: pytest.FixtureRequest, capability: str
) -> None:
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    template: str = request.getfixturevalue("postgres_template")

    @checkpointer_test(name="GarrisonPostgresSaver+encryption")
    async def postgres_saver() -> AsyncGenerator[BaseCheckpointSaver[str], None]:
        name = await asyncio.to_thread(databases.create, template)
        storage = await open_postgres(databases.url_for(name), encryption=encryption(KEY_2, KEY_1))
        try:
            yield storage.checkpointer
        finally:
            await storage.close()
            await asyncio.to_thread(databases.drop, name)

    await _check(postgres_saver, capability)
