"""Customer-support agent example: tools, token streaming and human approval."""
