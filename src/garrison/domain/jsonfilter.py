"""JSON containment, with the semantics of PostgreSQL's `@>` operator.

Metadata and values filters in search endpoints use it, so every storage adapter must
agree with PostgreSQL on what matches.
"""

from typing import Any


def json_contains(document: Any, pattern: Any, *, top_level: bool = True) -> bool:
    """True when `pattern` is contained in `document`.

    Objects match when every key of the pattern exists in the document with a containing
    value; arrays match when every pattern element is contained in some document element;
    scalars match by equality. As in PostgreSQL, a top-level array also contains a bare
    scalar that is one of its elements.
    """
    if isinstance(pattern, dict):
        if not isinstance(document, dict):
            return False
        return all(
            key in document and json_contains(document[key], value, top_level=False)
            for key, value in pattern.items()
        )
    if isinstance(pattern, list):
        if not isinstance(document, list):
            return False
        return all(
            any(json_contains(item, wanted, top_level=False) for item in document)
            for wanted in pattern
        )
    if isinstance(document, list):
        return top_level and any(_scalar_equal(item, pattern) for item in document)
    if isinstance(document, dict):
        return False
    return _scalar_equal(document, pattern)


def _scalar_equal(a: Any, b: Any) -> bool:
    # JSON has no separate boolean/number equality: True must not equal 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)
