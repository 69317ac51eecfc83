"""Seals API-table fields (run input, thread state copies, cron payloads, sensitive
metadata) into JSON-safe markers bound to their row.

A sealed value is stored as `{SEALED_FIELD: base64(envelope)}` in the same JSON/JSONB/TEXT
column, so no schema change is needed. The associated data is (tenant, table, row id,
field, key path): a marker copied to another row, field, metadata key or tenant fails to
open with `DecryptionError` instead of yielding another row's data.

Metadata stays a dict of plaintext keys so that it remains searchable; only the *values*
of keys whose lower-cased name contains one of `encryption.sensitive_metadata_keys` are
sealed. Nested dicts (and lists of dicts) are walked too: `{"user": {"email": ...}}` would
otherwise leak the address under an innocuous top-level key, and sealing only the leaf
keeps `{"user": {"team": ...}}` containment searches working. A sensitive key's whole value
(even a dict) is one envelope. Sealed keys are not searchable by the database (no blind
index: an HMAC of a low-entropy value such as a phone number is brute-forceable by whoever
holds the dump, which is the adversary here).

Encryption off (`envelopes` None): values pass through unchanged, and a marker found on
read is an error (its key is not configured). Strict mode refuses plaintext values, except
empty containers: they are the schema's column defaults and carry no data.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from garrison import serde
from garrison.security.envelope import (
    DecryptionError,
    EnvelopeCipher,
    is_envelope,
    kid_of,
    kid_of_base64,
    refuse_plaintext,
)

SEALED_FIELD = "__garrison_sealed__"  # the same marker as sealed store values
METADATA = "metadata"

Path = tuple[str, ...]


def row_context(tenant: str | None, table: str, row_id: str, field: str, path: Path = ()) -> Path:
    """The associated data of one field (or metadata key path) of one row."""
    return ("api-row", tenant or "", table, row_id, field, *path)


def sealed_envelope(stored: Any) -> bytes | None:
    """The envelope inside a marker, or None when `stored` is not a marker."""
    if not isinstance(stored, Mapping) or len(stored) != 1:
        return None
    text = stored.get(SEALED_FIELD)
    if not isinstance(text, str):
        return None
    try:
        envelope = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return envelope if is_envelope(envelope) else None


class FieldCipher:
    """Seals and opens API-row fields; a disabled cipher (no envelopes) passes through."""

    def __init__(
        self, envelopes: EnvelopeCipher | None = None, sensitive_keys: Sequence[str] = ()
    ) -> None:
        self.envelopes = envelopes
        self.sensitive_keys = tuple(k.lower() for k in sensitive_keys if k)

    @property
    def enabled(self) -> bool:
        return self.envelopes is not None

    # Whole fields ----------------------------------------------------------------------
    def seal(self, value: Any, context: Path) -> Any:
        """`value` as a marker; None stays None (an absent value leaks nothing)."""
        if self.envelopes is None or value is None:
            return value
        envelope = self.envelopes.seal(serde.dumps(value), context)
        return {SEALED_FIELD: base64.b64encode(envelope).decode("ascii")}

    def open(self, stored: Any, context: Path) -> Any:
        envelope = sealed_envelope(stored)
        if envelope is None:
            if self.envelopes is not None and self.envelopes.strict and _carries_data(stored):
                raise refuse_plaintext(f"{context[2]}.{context[4]}")
            return stored  # written before encryption was enabled
        if self.envelopes is None:
            raise DecryptionError(
                f"{context[2]}.{context[4]} is encrypted but no encryption keys are configured"
            )
        return serde.loads(self.envelopes.open(envelope, context))

    def rewrap(self, stored: Any, context: Path) -> Any:
        """`stored` under the active key, or `stored` itself when it already is."""
        if self.envelopes is None or stored is None:
            return stored
        envelope = sealed_envelope(stored)
        if envelope is not None and self.envelopes.is_current(envelope):
            return stored
        if envelope is None and not _carries_data(stored):
            return stored
        return self.seal(self.open(stored, context), context)

    # Metadata --------------------------------------------------------------------------
    def is_sensitive(self, key: str) -> bool:
        lowered = key.lower()
        return any(fragment in lowered for fragment in self.sensitive_keys)

    def seal_metadata(self, metadata: Any, context: Path) -> Any:
        """`metadata` with the values of sensitive keys sealed (at any depth); `context`
        is `row_context(..., "metadata")`."""
        if self.envelopes is None:
            return metadata
        return self._walk(metadata, context, self.seal)

    def open_metadata(self, stored: Any, context: Path) -> Any:
        if self.envelopes is None and not _has_marker(stored):
            return stored
        return self._walk(stored, context, self.open)

    def rewrap_metadata(self, stored: Any, context: Path) -> Any:
        if self.envelopes is None:
            return stored
        return self._walk(stored, context, self.rewrap)

    def _walk(self, value: Any, context: Path, apply: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                key: apply(item, (*context, str(key)))
                if self.is_sensitive(str(key))
                else self._walk(item, (*context, str(key)), apply)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._walk(item, (*context, str(i)), apply) for i, item in enumerate(value)]
        return value

    def is_stale(self, stored: Any, *, nested: bool = False) -> bool:
        """Whether `stored` is a marker under an older key (`nested`: or holds one at any
        depth, for metadata). Reads only the markers' headers: this runs on every read."""
        envelopes = self.envelopes
        if envelopes is None:
            return False
        if isinstance(stored, Mapping):
            text = stored.get(SEALED_FIELD) if len(stored) == 1 else None
            if isinstance(text, str):
                return envelopes.is_stale_kid(kid_of_base64(text))
            return nested and any(self.is_stale(v, nested=True) for v in stored.values())
        if nested and isinstance(stored, list):
            return any(self.is_stale(v, nested=True) for v in stored)
        return False

    # Moving / rotation helpers ------------------------------------------------------------
    def kids(self, stored: Any) -> list[str]:
        """The key ids of every envelope in `stored` (a field or a metadata dict)."""
        envelope = sealed_envelope(stored)
        if envelope is not None:
            return [kid_of(envelope)]
        if isinstance(stored, Mapping):
            return [kid for item in stored.values() for kid in self.kids(item)]
        if isinstance(stored, list):
            return [kid for item in stored for kid in self.kids(item)]
        return []


def _carries_data(stored: Any) -> bool:
    return stored is not None and stored != {} and stored != []


def _has_marker(value: Any) -> bool:
    if sealed_envelope(value) is not None:
        return True
    if isinstance(value, Mapping):
        return any(_has_marker(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_marker(item) for item in value)
    return False


__all__ = ["METADATA", "SEALED_FIELD", "FieldCipher", "row_context", "sealed_envelope"]
