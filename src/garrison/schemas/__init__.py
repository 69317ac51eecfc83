"""Wire models of the LangGraph Server API: request bodies (validated) and response shapes
(documented in the OpenAPI schema)."""
