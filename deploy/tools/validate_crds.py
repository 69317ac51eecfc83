"""Validate custom resources in (multi-document) YAML against strict CRD JSON schemas.

Built-in kinds (core groups, *.k8s.io) are skipped; any other kind without a schema fails.
Exits 1 when a document fails or when no custom resource was found at all, so it cannot
pass vacuously. Usage: python validate_crds.py SCHEMA_DIR FILE|- [FILE...]
"""

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml


def is_builtin(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def schema_for(schema_dir: Path, doc: dict[str, Any]) -> Path:
    group, _, version = doc["apiVersion"].rpartition("/")
    return schema_dir / group / f"{doc['kind'].lower()}_{version}.json"


def validate(schema_dir: Path, docs: Iterable[dict[str, Any]]) -> tuple[int, list[str]]:
    passed, errors = 0, []
    for doc in docs:
        if not doc or is_builtin(doc.get("apiVersion", "v1")):
            continue
        name = f"{doc['kind']}/{doc.get('metadata', {}).get('name', '?')}"
        path = schema_for(schema_dir, doc)
        if not path.exists():
            errors.append(f"{name}: no schema at {path}")
            continue
        validator = jsonschema.Draft7Validator(json.loads(path.read_text()))
        found = [
            f"{name}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
        errors.extend(found)
        passed += not found
    return passed, errors


def load(sources: list[str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for source in sources:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def main(argv: list[str]) -> int:
    passed, errors = validate(Path(argv[0]), load(argv[1:]))
    print("\n".join(errors))
    print(f"{passed} passed, {len(errors)} failed")
    return 1 if errors or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
