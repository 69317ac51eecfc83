"""Deterministic tool selection and argument extraction from free text.

Used by the default policy and by ``tool_choice`` enforcement of the offline
model; custom policies may use them too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from garrison.llm._offline_policy import ToolSpec

__all__ = ["extract_tool_args", "match_tool"]

# Verbs and fillers that appear in many tool names and so identify none of them.
_GENERIC_WORDS = frozenset(
    {"a", "an", "and", "by", "call", "do", "for", "get", "in", "make", "of", "on", "or"}
    | {"run", "set", "the", "to", "tool", "use", "with"}
)
_ID_SUFFIXES = frozenset({"id", "number", "no", "code"})
_NUMBER = r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.]*\d)"
_IDENTIFIER = r"(?<![\w.$])(?=[\w-]*\d)[A-Za-z0-9][\w-]*+(?!\.\d)"
_TRUE_WORDS = frozenset({"true", "yes", "y", "1", "on"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0", "off"})


def _words(text: str) -> list[str]:
    """Lower-case words, with ``camelCase`` and ``snake_case`` names split apart."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)
    return re.findall(r"[a-z0-9]+", spaced.lower())


def _stems(text: str) -> set[str]:
    """Words with a plural ``s`` dropped, so "orders" matches ``lookup_order``."""
    return {word[:-1] if len(word) > 3 and word.endswith("s") else word for word in _words(text)}


def match_tool(text: str, tools: Sequence[ToolSpec]) -> ToolSpec | None:
    """Pick the tool that ``text`` clearly refers to, if any.

    A tool scores highly when its exact name appears in the text, and one point
    per distinctive word of its name (``lookup_order`` -> "lookup", "order")
    found in the text; generic verbs such as "get" do not count. The best score
    wins and ties go to the earliest tool, so the choice is deterministic.

    Args:
        text: The user request.
        tools: Candidate tools, in binding order.

    Returns:
        The best-matching tool, or ``None`` when no tool is mentioned.
    """
    lowered = text.lower()
    text_stems = _stems(text)
    best: ToolSpec | None = None
    best_score = 0
    for tool in tools:
        score = 100 if tool.name.lower() in lowered else 0
        score += len((_stems(tool.name) - _GENERIC_WORDS) & text_stems)
        if score > best_score:
            best, best_score = tool, score
    return best


def _schema_type(schema: Mapping[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    if isinstance(declared, list):
        return next((t for t in declared if t != "null"), "string")
    for option in schema.get("anyOf", schema.get("oneOf", ())):
        if option.get("type") != "null":
            return _schema_type(option)
    return "object" if "$ref" in schema else "string"


def _key_pattern(words: Sequence[str]) -> str:
    return r"[\s_-]*".join(re.escape(word) for word in words)


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """Convert extracted text to the schema type, or ``None`` if it does not fit."""
    value = raw.strip().strip("\"'").strip()
    if "enum" in schema:
        return next((opt for opt in schema["enum"] if str(opt).lower() == value.lower()), None)
    kind = _schema_type(schema)
    if kind in {"integer", "number"}:
        match = re.search(_NUMBER, value.replace("$", ""))
        if match is None:
            return None
        number = float(match.group())
        if kind == "number":
            return number
        return int(number) if number.is_integer() else None
    if kind == "boolean":
        lowered = value.lower()
        return True if lowered in _TRUE_WORDS else False if lowered in _FALSE_WORDS else None
    if kind == "array":
        return [value]
    if kind == "object":
        return None
    return value or None


def _default_value(schema: Mapping[str, Any], text: str) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    return {
        "integer": 0,
        "number": 0.0,
        "boolean": False,
        "array": [],
        "object": {},
    }.get(_schema_type(schema), text)


def extract_tool_args(tool: ToolSpec, text: str) -> dict[str, Any]:
    """Fill the arguments of ``tool`` from free text, deterministically.

    For each JSON-schema property, in this order of preference:

    1. an explicit ``name: value`` / ``name=value`` in the text;
    2. a value right after the property's words (``order A1001`` for
       ``order_id``, ``amount of $20`` for a numeric ``amount``);
    3. the first unused identifier-like token (ids) or number (numeric types),
       or an enum value mentioned in the text;
    4. for required properties only: the schema default, else a neutral value
       of the right type; required strings get the whole text.

    Args:
        tool: The tool whose arguments are wanted.
        text: The user request to extract them from.

    Returns:
        Arguments keyed by property name; optional properties that could not be
        found are omitted.
    """
    args: dict[str, Any] = {}
    used: list[tuple[int, int]] = []

    def free(span: tuple[int, int]) -> bool:
        return all(span[1] <= start or span[0] >= end for start, end in used)

    def take(name: str, match: re.Match[str], group: int, schema: Mapping[str, Any]) -> None:
        value = _coerce(match.group(group), schema)
        if value is not None and free(match.span(group)):
            args[name] = value
            used.append(match.span(group))

    patterns = {name: _value_pattern(name, schema) for name, schema in tool.properties.items()}
    for name, schema in tool.properties.items():
        if not _words(name):
            continue
        value = patterns[name] or r"\"[^\"]*\"|'[^']*'|[^,;\n]+"
        explicit = rf"\b{_key_pattern(_words(name))}\s*[:=]\s*[\"'$]?({value})"
        if match := re.search(explicit, text, re.IGNORECASE):
            take(name, match, 1, schema)

    unresolved = {
        name: pattern
        for name, pattern in patterns.items()
        if name not in args and pattern is not None and _words(name)
    }
    for name, pattern in unresolved.items():
        words = _words(name)
        if len(words) > 1 and words[-1] in _ID_SUFFIXES:
            words = words[:-1]
        near = rf"\b{_key_pattern(words)}\w*(?:\s+(?:id|number|no\.?|is|of|=|:))*\s*[:#=]?\s*\$?"
        for match in re.finditer(f"{near}({pattern})", text, re.IGNORECASE):
            take(name, match, 1, tool.properties[name])
            if name in args:
                break
    for name, pattern in unresolved.items():
        for match in re.finditer(f"({pattern})", text, re.IGNORECASE):
            if name in args:
                break
            take(name, match, 1, tool.properties[name])

    for name, schema in tool.properties.items():
        if name not in args and name in tool.required:
            args[name] = _default_value(schema, text)
    return args


def _value_pattern(name: str, schema: Mapping[str, Any]) -> str | None:
    """The regex a property's value must match to be found without its key."""
    if "enum" in schema:
        options = sorted((str(option) for option in schema["enum"]), key=len, reverse=True)
        return r"\b(?:" + "|".join(re.escape(option) for option in options) + r")\b"
    kind = _schema_type(schema)
    if kind in {"integer", "number"}:
        return _NUMBER
    words = _words(name)
    if kind == "string" and words and words[-1] in _ID_SUFFIXES:
        return _IDENTIFIER
    return None
