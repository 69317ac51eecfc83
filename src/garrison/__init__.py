"""Garrison: a self-hosted, LangGraph Server-compatible runtime for LangGraph agents."""

__version__ = "0.1.0"
