"""What a graph looks like: its drawable structure, JSON schemas and subgraphs."""

import sys
import types
import typing
import warnings
from collections.abc import Callable
from typing import Any

import typing_extensions
from pydantic import TypeAdapter

from garrison.runtime.graphs import AnyGraph


def draw(graph: AnyGraph, xray: bool | int) -> dict[str, Any]:
    """The LangChain drawable-graph JSON (`{nodes, edges}`), without per-node object ids."""
    drawable = graph.get_graph(xray=xray).to_json()
    for node in drawable.get("nodes", []):
        data = node.get("data")
        if isinstance(data, dict):
            data.pop("id", None)
    return drawable


def _attempt(produce: Callable[[], Any]) -> Any:
    # Schema generation fails on arbitrary user types; a missing schema is better than none.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return produce()
    except Exception:
        return None


def _first(*producers: Callable[[], Any]) -> Any:
    """The first schema one of `producers` manages to build (None if none does)."""
    for produce in producers:
        schema = _attempt(produce)
        if schema is not None:
            return schema
    return None


def _builder_schema(graph: AnyGraph, attribute: str) -> Any:
    """The JSON schema of a StateGraph builder's `attribute` type (input/output/state)."""
    builder = getattr(graph, "builder", None)
    state_type = getattr(builder, attribute, None)
    if state_type is None:
        return None
    schema = TypeAdapter(pydantic_compatible(state_type)).json_schema()
    schema.setdefault("title", graph.get_name("State"))
    return schema


def schemas(graph: AnyGraph) -> dict[str, Any]:
    """Input, output, state, config and context JSON schemas (each may be None)."""
    return {
        "input_schema": _first(
            graph.get_input_jsonschema, lambda: _builder_schema(graph, "input_schema")
        ),
        "output_schema": _first(
            graph.get_output_jsonschema, lambda: _builder_schema(graph, "output_schema")
        ),
        "state_schema": _first(
            lambda: _builder_schema(graph, "state_schema"), graph.get_output_jsonschema
        ),
        "config_schema": _attempt(graph.get_config_jsonschema),
        "context_schema": _first(
            graph.get_context_jsonschema, lambda: _builder_schema(graph, "context_schema")
        ),
    }


def subgraph_schemas(
    graph: AnyGraph, namespace: str | None, recurse: bool
) -> dict[str, dict[str, Any]]:
    return {
        name: schemas(subgraph)  # type: ignore[arg-type]
        for name, subgraph in graph.get_subgraphs(namespace=namespace, recurse=recurse)
    }


# typing.TypedDict on Python < 3.12 ---------------------------------------------------------
# Pydantic refuses `typing.TypedDict` before Python 3.12 (it needs typing_extensions'), yet
# that is what most graphs declare their state with. The schema is rebuilt from an equivalent
# typing_extensions.TypedDict, recursively, so the graph's own types are left untouched.

# Called with a computed name, which static type checkers do not allow.
_make_typeddict: Any = typing_extensions.TypedDict
_WRAPPERS = (typing_extensions.Required, typing_extensions.NotRequired, typing_extensions.ReadOnly)


def pydantic_compatible(annotation: Any) -> Any:
    if sys.version_info >= (3, 12):
        return annotation
    return _rewrite(annotation, {})


def _rewrite(annotation: Any, seen: dict[int, Any]) -> Any:
    if typing_extensions.is_typeddict(annotation) and isinstance(annotation, type):
        return _typeddict(annotation, seen)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is None or not args:
        return annotation
    if origin is typing.Annotated:
        base, *extras = args
        return typing.Annotated[(_rewrite(base, seen), *extras)]
    if origin is typing.Literal:
        return annotation
    rewritten = tuple(_rewrite(arg, seen) if not isinstance(arg, list) else arg for arg in args)
    if rewritten == args:
        return annotation
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[rewritten]  # noqa: UP007
    if isinstance(annotation, types.GenericAlias):
        return types.GenericAlias(origin, rewritten)
    copy_with = getattr(annotation, "copy_with", None)
    return copy_with(rewritten) if copy_with is not None else annotation


def _typeddict(annotation: type, seen: dict[int, Any]) -> Any:
    if id(annotation) in seen:
        # A recursive TypedDict: its inner occurrences are described loosely.
        return seen[id(annotation)] or dict[str, Any]
    seen[id(annotation)] = None
    try:
        hints = typing.get_type_hints(annotation, include_extras=True)
    except Exception:
        hints = dict(getattr(annotation, "__annotations__", {}))
    required = getattr(annotation, "__required_keys__", frozenset(hints))
    fields: dict[str, Any] = {}
    for key, hint in hints.items():
        while typing.get_origin(hint) in _WRAPPERS:
            hint = typing.get_args(hint)[0]
        wrapper = typing_extensions.Required if key in required else typing_extensions.NotRequired
        fields[key] = wrapper[_rewrite(hint, seen)]
    compatible = _make_typeddict(annotation.__name__, fields)
    compatible.__module__ = annotation.__module__
    compatible.__qualname__ = annotation.__qualname__
    compatible.__doc__ = annotation.__doc__
    seen[id(annotation)] = compatible
    return compatible
