"""Deterministic document-processing workflow with a subgraph.

Flow: ``ingest`` -> ``analyze`` (subgraph: ``extract_keywords`` -> ``score``)
-> ``summarize`` -> ``publish``. Every node appends to the ``steps`` log and
emits a ``custom`` stream event ``{"step", "progress", "message"}``; stream with
``subgraphs=True`` to see the subgraph's events under its namespace.

Input: ``{"text": "..."}``. Output: ``document_id``, ``title``, ``summary``,
``keywords``, ``score`` and ``steps``.
"""

import hashlib
import operator
import re
from typing import Annotated, Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from workflow.analysis import analysis_graph

SUMMARY_WORDS = 30


class DocumentInput(TypedDict):
    """Input of the workflow."""

    text: str


class DocumentOutput(TypedDict):
    """Result of the workflow."""

    document_id: str
    title: str
    summary: str
    keywords: list[str]
    score: float
    steps: Annotated[list[str], operator.add]


class DocumentState(DocumentInput, DocumentOutput):
    """Full working state; ``steps`` accumulates a log line per node."""

    sentences: list[str]


def _progress(step: str, progress: float, message: str) -> None:
    get_stream_writer()({"step": step, "progress": progress, "message": message})


def ingest(state: DocumentState) -> dict[str, Any]:
    """Normalise whitespace, split sentences and derive a title."""
    text = " ".join(state["text"].split())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
    title = sentences[0].rstrip(".!?")[:60] if sentences else "Untitled"
    _progress("ingest", 0.2, f"{len(sentences)} sentences")
    return {
        "text": text,
        "sentences": sentences,
        "title": title,
        "steps": [f"ingest: {len(sentences)} sentences, {len(text.split())} words"],
    }


def summarize(state: DocumentState) -> dict[str, Any]:
    """Keep the leading sentences up to a word budget and list the keywords."""
    summary_words: list[str] = []
    for sentence in state["sentences"]:
        words = sentence.split()
        if summary_words and len(summary_words) + len(words) > SUMMARY_WORDS:
            break
        summary_words.extend(words)
    summary = " ".join(summary_words[:SUMMARY_WORDS])
    if state["keywords"]:
        summary += f" (keywords: {', '.join(state['keywords'])})"
    _progress("summarize", 0.8, f"{len(summary.split())} words")
    return {"summary": summary, "steps": [f"summarize: {len(summary_words)} words kept"]}


def publish(state: DocumentState) -> dict[str, Any]:
    """Assign a content-derived document id (stands in for a real publish call)."""
    document_id = "doc-" + hashlib.sha256(state["text"].encode()).hexdigest()[:12]
    _progress("publish", 1.0, f"published {document_id}")
    return {"document_id": document_id, "steps": [f"publish: {document_id}"]}


builder = StateGraph(DocumentState, input_schema=DocumentInput, output_schema=DocumentOutput)
builder.add_node("ingest", ingest)
builder.add_node("analyze", analysis_graph)
builder.add_node("summarize", summarize)
builder.add_node("publish", publish)
builder.add_edge(START, "ingest")
builder.add_edge("ingest", "analyze")
builder.add_edge("analyze", "summarize")
builder.add_edge("summarize", "publish")
builder.add_edge("publish", END)

graph = builder.compile(name="workflow")
"""The compiled workflow; the server supplies the checkpointer and store."""
