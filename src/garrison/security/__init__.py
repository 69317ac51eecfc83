"""Security building blocks: encryption at rest, PII redaction, the audit log."""
