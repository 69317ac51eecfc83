"""Import graph objects named the way langgraph.json names them.

`./agent/graph.py:graph` loads a file relative to the project directory;
`my_package.graphs:make_graph` imports an installed (or dependency) module.
"""

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from garrison.domain.errors import InvalidArgumentError


def import_object(reference: str, root: Path) -> Any:
    """The object `reference` ("path.py:attr" or "module:attr") points to."""
    location, _, attribute = reference.rpartition(":")
    if not location or not attribute:
        raise InvalidArgumentError(f"{reference!r}: expected 'path/to/file.py:attribute'")
    module = _load_file(location, root) if _is_file_path(location) else _import(location)
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InvalidArgumentError(f"{reference!r}: module has no attribute {part!r}") from None
    return target


def _is_file_path(location: str) -> bool:
    return location.endswith(".py") or "/" in location or location.startswith(".")


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgumentError(f"cannot import module {module_name!r}: {exc}") from exc


def _load_file(location: str, root: Path) -> ModuleType:
    path = (root / location).resolve()
    if not path.is_file():
        raise InvalidArgumentError(f"graph file not found: {path}")
    package_module = _importable_name(path)
    if package_module is not None:
        # Inside a package on the import path: import it under its real name, so relative
        # imports work and the module is not loaded twice under two names.
        return _import(package_module)
    module_name = _module_name_for(path, root)
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidArgumentError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # Register before executing: typing (postponed annotations, TypedDict resolution) and
    # pickling look the module up by name while it runs.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _importable_name(path: Path) -> str | None:
    """`pkg.sub.module` when `path` sits in packages (with __init__.py) under a sys.path
    entry; None for a loose file."""
    if not (path.parent / "__init__.py").is_file():
        return None
    for entry in sys.path:
        if not entry:
            continue
        base = Path(entry).resolve()
        try:
            relative = path.with_suffix("").relative_to(base)
        except ValueError:
            continue
        packages = [base.joinpath(*relative.parts[:i]) for i in range(1, len(relative.parts))]
        if all((p / "__init__.py").is_file() for p in packages) and all(
            part.isidentifier() for part in relative.parts
        ):
            return ".".join(relative.parts)
    return None


def _module_name_for(path: Path, root: Path) -> str:
    try:
        relative = path.relative_to(root.resolve())
    except ValueError:
        relative = Path(path.name)
    dotted = ".".join(relative.with_suffix("").parts)
    return "garrison_graphs." + re.sub(r"[^0-9A-Za-z_.]", "_", dotted)
