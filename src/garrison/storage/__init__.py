"""Storage ports (Protocols) and their adapters. Knows nothing of HTTP or services."""
