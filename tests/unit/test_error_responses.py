"""The OpenAPI document lists the errors middleware answers for (401/403/429/503 on
protected routes, 413 on routes with a body), so generated clients and the fuzzer know them."""

from pathlib import Path

from garrison.app import create_app
from garrison.auth.route_policy import PUBLIC, classified_routes
from garrison.config.project import load_project
from garrison.config.settings import Settings

PROJECT = Path(__file__).resolve().parents[1] / "e2e" / "project" / "langgraph.json"


def test_middleware_errors_are_documented() -> None:
    project = load_project(PROJECT)
    paths = create_app(Settings.load(project.settings_values(), {}), project).openapi()["paths"]
    checked = 0
    for (method, path), permission in classified_routes().items():
        operation = paths.get(path, {}).get(method.lower())
        if operation is None:  # docs pages are not in the schema
            continue
        documented = set(operation["responses"])
        protected = {"401", "403", "429", "503"}
        if permission is PUBLIC:
            assert not documented & protected, (method, path)
        else:
            assert protected <= documented, (method, path)
            error = operation["responses"]["401"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}
        assert ("413" in documented) == (method in {"POST", "PUT", "PATCH"}), (method, path)
        checked += 1
    assert checked > 50
