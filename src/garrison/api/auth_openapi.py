"""`auth.openapi` in the project file: how a project with custom auth describes its
credentials in the OpenAPI document (`securitySchemes`, the default `security`, and
per-operation overrides under `paths`), as LangGraph Server does."""

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI

from garrison.domain.errors import InvalidArgumentError


def document_custom_auth(app: FastAPI, spec: Any) -> None:
    if spec is None:
        return
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError("auth.openapi must be an object")
    schemes, security, paths = spec.get("securitySchemes"), spec.get("security"), spec.get("paths")
    if schemes is not None and not isinstance(schemes, Mapping):
        raise InvalidArgumentError("auth.openapi.securitySchemes must be an object")
    if security is not None and not isinstance(security, list):
        raise InvalidArgumentError("auth.openapi.security must be a list")
    if paths is not None and not (
        isinstance(paths, Mapping) and all(isinstance(m, Mapping) for m in paths.values())
    ):
        raise InvalidArgumentError("auth.openapi.paths must map paths to {method: fields}")
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()  # cached by FastAPI after the first call
        if fresh:
            if schemes:
                components = schema.setdefault("components", {})
                components["securitySchemes"] = dict(schemes)
            if security is not None:
                schema["security"] = list(security)
            for path, methods in (paths or {}).items():
                for method, fields in methods.items():
                    operation = schema.get("paths", {}).get(path, {}).get(str(method).lower())
                    if operation is not None:
                        operation.update(fields)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["document_custom_auth"]
