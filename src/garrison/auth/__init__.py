"""Authentication (API keys, JWT/OIDC), roles and the route policy."""
