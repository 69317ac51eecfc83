"""Row-level access: which rows of a resource a caller may see and touch.

Authorization decides a filter once per request; storage applies it to searches and counts
(so pages and totals never include hidden rows) and services apply it to single-row reads,
where a hidden row answers exactly like a missing one.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from garrison.domain.jsonfilter import json_contains


@dataclass(frozen=True, slots=True)
class AccessFilter:
    """Rows whose metadata contains every pattern (PostgreSQL `@>` semantics) and, when
    `owner` is set, whose owner column equals it. The empty filter admits every row."""

    metadata: tuple[dict[str, Any], ...] = ()
    owner: str | None = None

    def admits(self, metadata: Mapping[str, Any], owner: str | None) -> bool:
        if self.owner is not None and owner != self.owner:
            return False
        return all(json_contains(dict(metadata), pattern) for pattern in self.metadata)


__all__ = ["AccessFilter"]
