"""Pure domain types and decisions: no I/O, imported by every other layer."""
