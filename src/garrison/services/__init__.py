"""Use cases behind the API: no SQL, no HTTP types."""
