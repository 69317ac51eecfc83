"""OpenAPI links: which later calls take an id that a response returns.

Clients and tools (e.g. Schemathesis' stateful tests) follow them to chain calls: create a
thread, then read, update, run and delete *that* thread.
"""

import re
from typing import Any

Target = tuple[str, str]  # (method, path template)


def _name(method: str, path: str) -> str:
    # Link names must match ^[a-zA-Z0-9.\-_]+$.
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{method}{path}").strip("_")


def _operation_ref(method: str, path: str) -> str:
    pointer = path.replace("~", "~0").replace("/", "~1")
    return f"#/paths/{pointer}/{method.lower()}"


def links(fields: tuple[str, ...], *targets: Target) -> dict[int | str, dict[str, Any]]:
    """`responses=` entry for a 200 whose body carries `fields`: each feeds the path
    parameter of the same name in every target that has it."""
    declared = {}
    for method, path in targets:
        parameters = {
            name: f"$response.body#/{name}" for name in fields if "{" + name + "}" in path
        }
        declared[_name(method, path)] = {
            "operationRef": _operation_ref(method, path),
            "parameters": parameters,
        }
    return {200: {"links": declared}}
