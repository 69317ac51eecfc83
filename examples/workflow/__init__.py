"""Document-processing workflow example: a subgraph and custom progress events."""
