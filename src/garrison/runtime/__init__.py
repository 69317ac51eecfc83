"""Graph loading, the worker loop and its helpers (leases, reaper, executor)."""
