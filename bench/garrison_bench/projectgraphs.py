"""The benchmark project's graphs, imported by file path for the in-process baseline, so
the baseline runs exactly the code the server serves."""

import importlib.util
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent / "project"
CONFIG_FILE = PROJECT_DIR / "langgraph.json"


def load_graphs() -> tuple[dict[str, Any], dict[str, int]]:
    """({graph name: compiled graph}, {graph name: expected final count})."""
    spec = importlib.util.spec_from_file_location(
        "garrison_bench_graphs", PROJECT_DIR / "graphs.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {PROJECT_DIR / 'graphs.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counts: dict[str, int] = module.NODE_COUNTS
    return {name: getattr(module, name) for name in counts}, counts
