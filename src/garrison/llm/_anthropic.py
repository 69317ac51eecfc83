"""``ChatAnthropic`` with a connect timeout of its own (imported only when used)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import anthropic
from langchain_anthropic import ChatAnthropic

__all__ = ["TimedChatAnthropic"]


class TimedChatAnthropic(ChatAnthropic):
    """``ChatAnthropic`` whose SDK clients get separate connect and read timeouts.

    ``ChatAnthropic`` accepts one float for every phase of a request; the
    Anthropic SDK takes a ``Timeout``, so the SDK clients are built here
    with ``default_request_timeout`` as the read timeout and ``connect_timeout``
    for connecting.
    """

    connect_timeout: float | None = None

    def _sdk_params(self) -> dict[str, Any]:
        params = dict(self._client_params)
        # The SDK's own Timeout class: anthropic>=2 runs on httpx2 and refuses httpx objects.
        params["timeout"] = anthropic.Timeout(
            self.default_request_timeout, connect=self.connect_timeout
        )
        return params

    @cached_property
    def _client(self) -> anthropic.Client:
        return anthropic.Client(**self._sdk_params())

    @cached_property
    def _async_client(self) -> anthropic.AsyncClient:
        return anthropic.AsyncClient(**self._sdk_params())
