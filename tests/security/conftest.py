"""Fixtures shared by the security tests."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.security.test_encryption_at_rest import Site


@pytest.fixture(params=["sqlite", "postgres"])
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    """The storage the encryption tests open and inspect, on each adapter (modules with a
    `site` fixture of their own use theirs)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    site = Site(request.param, tmp_path, url)
    yield site
    for storage in list(site.opened):
        await site.close(storage)
