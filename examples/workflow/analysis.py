"""The ``analyze`` subgraph of the workflow: ``extract_keywords`` -> ``score``."""

import operator
import re
from collections import Counter
from typing import Annotated, Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

STOPWORDS = frozenset(
    {
        "about",
        "after",
        "also",
        "because",
        "been",
        "before",
        "being",
        "between",
        "both",
        "could",
        "does",
        "each",
        "from",
        "have",
        "into",
        "just",
        "more",
        "most",
        "other",
        "over",
        "same",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "very",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "will",
        "with",
        "would",
        "your",
    }
)
"""Common words that never count as keywords."""

TOP_KEYWORDS = 5


class AnalysisInput(TypedDict):
    """What the subgraph reads from its parent."""

    text: str


class AnalysisOutput(TypedDict):
    """What the subgraph hands back to its parent."""

    keywords: list[str]
    score: float
    steps: Annotated[list[str], operator.add]


class AnalysisState(AnalysisInput, AnalysisOutput):
    """Working state of the subgraph."""


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z'-]*", text.lower())


def extract_keywords(state: AnalysisState) -> dict[str, Any]:
    """Pick the most frequent non-trivial words (ties broken alphabetically)."""
    counts = Counter(w for w in _words(state["text"]) if len(w) > 3 and w not in STOPWORDS)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    keywords = [word for word, _ in ranked[:TOP_KEYWORDS]]
    get_stream_writer()(
        {"step": "extract_keywords", "progress": 0.4, "message": f"keywords: {keywords}"}
    )
    return {"keywords": keywords, "steps": [f"extract_keywords: {len(keywords)} keywords"]}


def score(state: AnalysisState) -> dict[str, Any]:
    """Score lexical diversity: unique words over total words, from 0 to 1."""
    words = _words(state["text"])
    value = round(len(set(words)) / len(words), 3) if words else 0.0
    get_stream_writer()({"step": "score", "progress": 0.6, "message": f"score {value}"})
    return {"score": value, "steps": [f"score: {value}"]}


_builder = StateGraph(AnalysisState, input_schema=AnalysisInput, output_schema=AnalysisOutput)
_builder.add_node("extract_keywords", extract_keywords)
_builder.add_node("score", score)
_builder.add_edge(START, "extract_keywords")
_builder.add_edge("extract_keywords", "score")
_builder.add_edge("score", END)

analysis_graph = _builder.compile(name="analyze")
"""Compiled subgraph; it inherits the parent's checkpointer."""
