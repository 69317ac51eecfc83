"""Garrison benchmark suite: load generator, in-process baseline, orchestration, report.

Every measured phase runs in its own process, so the server, the load generator and the
baseline never share an interpreter, a GIL or an event loop.
"""
