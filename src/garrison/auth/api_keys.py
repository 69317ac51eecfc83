"""API keys: how they are made, shown once, and checked.

A key reads `gk_<key id>_<secret>`. The key id (12 hex characters, public) finds the row;
the secret (32 bytes from the OS CSPRNG, 256 bits) is never stored: the row keeps its
SHA-256. A slow password hash buys nothing for a secret of that entropy, and a fast one
keeps every request's check cheap. Comparison is constant-time.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "gk"
_KEY = re.compile(r"^gk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: `secret_text` is shown to the operator once and then forgotten."""

    key_id: str
    secret_text: str
    secret_hash: str

    def __repr__(self) -> str:  # never print the secret by accident
        return f"IssuedKey(key_id={self.key_id!r})"


def issue_key() -> IssuedKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)  # 32 bytes -> 43 url-safe characters
    return IssuedKey(key_id, f"{PREFIX}_{key_id}_{secret}", hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _KEY.match(text)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


__all__ = ["PREFIX", "IssuedKey", "hash_secret", "issue_key", "parse_key", "secret_matches"]
