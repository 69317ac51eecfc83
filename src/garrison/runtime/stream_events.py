"""LangGraph stream chunks -> the SSE events of the LangGraph Server API.

The worker asks LangGraph for the modes the client requested plus `values` and `updates`,
which it needs itself (the final output, and whether the run stopped at an interrupt);
only what the client asked for is published.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk

from garrison.domain.errors import InvalidArgumentError

STREAM_MODES = frozenset(
    {
        "values",
        "updates",
        "messages",
        "messages-tuple",
        "custom",
        "events",
        "debug",
        "tasks",
        "checkpoints",
    }
)
_INTERNAL_MODES = ("values", "updates")
_LANGGRAPH_MODE = {"messages-tuple": "messages"}
INTERRUPT_KEY = "__interrupt__"

Event = tuple[str, Any]  # (SSE event name, JSON-able payload)


def parse_stream_modes(value: str | Sequence[str] | None) -> list[str]:
    """Validate the API's `stream_mode` (one value or a list); default `values`."""
    modes = [value] if isinstance(value, str) else list(value or ["values"])
    unknown = [m for m in modes if m not in STREAM_MODES]
    if unknown:
        raise InvalidArgumentError(
            f"Invalid stream_mode {unknown[0]!r}; expected one of {', '.join(sorted(STREAM_MODES))}"
        )
    return list(dict.fromkeys(modes)) or ["values"]


@dataclass(frozen=True, slots=True)
class StreamPlan:
    requested: frozenset[str]
    graph_modes: list[str]  # what to ask LangGraph for
    subgraphs: bool

    @property
    def use_events(self) -> bool:
        return "events" in self.requested


def plan_stream(requested: Iterable[str], subgraphs: bool) -> StreamPlan:
    wanted = frozenset(requested)
    modes = [*_INTERNAL_MODES]
    for mode in wanted - {"events"}:
        graph_mode = _LANGGRAPH_MODE.get(mode, mode)
        if graph_mode not in modes:
            modes.append(graph_mode)
    return StreamPlan(requested=wanted, graph_modes=modes, subgraphs=subgraphs)


class EventTranslator:
    """Turns one run's chunks into wire events and remembers what the run produced."""

    def __init__(self, plan: StreamPlan) -> None:
        self._plan = plan
        self._want = plan.requested
        self.last_values: Any = None
        self.interrupts: list[Any] = []
        self.stopped_at_interrupt = False
        self._partial: dict[str, BaseMessageChunk] = {}
        self._seen_messages: set[str] = set()

    def translate(self, namespace: tuple[str, ...], mode: str, chunk: Any) -> list[Event]:
        root = not namespace
        suffix = "|" + "|".join(namespace) if namespace else ""
        if mode == "values":
            if root:
                self.last_values = chunk
            return [("values" + suffix, chunk)] if "values" in self._want else []
        if mode == "updates":
            return self._updates(chunk, suffix, root)
        if mode == "messages":
            return self._messages(chunk, suffix)
        if mode == "debug":
            return (
                [("debug" + suffix, _with_checkpoint_ids(chunk))] if "debug" in self._want else []
            )
        if mode in self._want:  # custom, tasks, checkpoints
            return [(mode + suffix, chunk)]
        return []

    def _updates(self, chunk: Any, suffix: str, root: bool) -> list[Event]:
        has_interrupt = isinstance(chunk, dict) and INTERRUPT_KEY in chunk
        if root and has_interrupt:
            self.stopped_at_interrupt = True
            self.interrupts.extend(chunk[INTERRUPT_KEY])
        if "updates" in self._want:
            return [("updates" + suffix, chunk)]
        if has_interrupt and chunk[INTERRUPT_KEY] and "values" not in self._want:
            # Clients that asked for neither values nor updates still learn of interrupts.
            return [("values" + suffix, {INTERRUPT_KEY: chunk[INTERRUPT_KEY]})]
        return []

    def _messages(self, chunk: Any, suffix: str) -> list[Event]:
        message, metadata = chunk
        events: list[Event] = []
        if "messages-tuple" in self._want:
            events.append(("messages" + suffix, [message, metadata]))
        if "messages" in self._want:
            events.extend(self._legacy_messages(message, metadata))
        return events

    def _legacy_messages(self, message: BaseMessage, metadata: Any) -> list[Event]:
        # The legacy mode carries no namespace suffix and sends whole messages: chunks are
        # merged so each `messages/partial` holds the message so far.
        message_id = message.id or ""
        events: list[Event] = []
        if message_id not in self._seen_messages:
            self._seen_messages.add(message_id)
            events.append(("messages/metadata", {message_id: {"metadata": metadata}}))
        if isinstance(message, BaseMessageChunk):
            previous = self._partial.get(message_id)
            merged = message if previous is None else previous + message
            self._partial[message_id] = merged
            events.append(("messages/partial", [merged]))
        else:
            events.append(("messages/complete", [message]))
        return events

    def output(self) -> Any:
        """What `wait`/`join` return: the last root values (interrupts included)."""
        values = self.last_values
        if self.interrupts and isinstance(values, dict) and INTERRUPT_KEY not in values:
            values = {**values, INTERRUPT_KEY: self.interrupts}
        return values


def _with_checkpoint_ids(chunk: Any) -> Any:
    # Newer clients read `checkpoint` / `parent_checkpoint` next to the older configs.
    if not (isinstance(chunk, dict) and chunk.get("type") == "checkpoint"):
        return chunk
    payload = chunk.get("payload")
    if not isinstance(payload, dict):
        return chunk
    enriched = dict(payload)
    for source, target in (("config", "checkpoint"), ("parent_config", "parent_checkpoint")):
        config = payload.get(source)
        enriched[target] = config.get("configurable") if isinstance(config, dict) else None
    return {**chunk, "payload": enriched}


def split_item(item: Any, plan: StreamPlan) -> tuple[tuple[str, ...], str, Any]:
    """(namespace, mode, chunk) from one astream item (its shape depends on `subgraphs`)."""
    if plan.subgraphs:
        namespace, mode, chunk = item
        return tuple(namespace), mode, chunk
    mode, chunk = item
    return (), mode, chunk
