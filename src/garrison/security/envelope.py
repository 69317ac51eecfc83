"""AES-256-GCM envelopes bound to the row they belong to.

Layout: `version (1 byte) | kid length (1 byte) | kid | nonce (12 random bytes) |
ciphertext + tag (16 bytes)`. The kid picks the decryption key, so rows written under an
older key keep decrypting after a new key becomes active (rotation). The associated data
is the row's context (tenant, thread, field...): it is authenticated but not stored, so a
ciphertext copied into another row, thread, tenant or field fails to decrypt.

A random 96-bit nonce per envelope keeps the GCM nonce-collision risk negligible below
2^32 encryptions per key, far beyond what one key sees between rotations here.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from garrison.security.keyring import Keyring

VERSION = 0xE1  # an unusual first byte: envelopes are told apart from plaintext rows
NONCE_BYTES = 12
TAG_BYTES = 16
_MIN_LENGTH = 2 + 1 + NONCE_BYTES + TAG_BYTES
# Base64 characters that cover the longest possible header (2 bytes + a 255-byte kid).
_HEADER_BASE64 = 4 * -(-(2 + 255) // 3)

logger = logging.getLogger("garrison.security")


class DecryptionError(Exception):
    """A ciphertext failed authentication, is malformed, or its key is not configured."""


class PlaintextRefusedError(DecryptionError):
    """Strict mode found a value that was stored without an envelope."""


def refuse_plaintext(what: str) -> PlaintextRefusedError:
    """The error for an unencrypted `what` in strict mode, logged as a security event
    (a plaintext row after migration means someone wrote the table directly)."""
    logger.error("encryption.plaintext_refused: an unencrypted %s was refused", what)
    return PlaintextRefusedError(f"refused an unencrypted {what} in strict encryption mode")


def associated_data(context: Sequence[str]) -> bytes:
    """Length-prefixed parts, so that ("ab", "c") and ("a", "bc") never collide."""
    out = bytearray()
    for part in context:
        data = part.encode("utf-8")
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


def is_envelope(data: bytes) -> bool:
    """Whether `data` has an envelope's shape (it may still fail to decrypt)."""
    if len(data) < _MIN_LENGTH or data[0] != VERSION:
        return False
    kid_length = data[1]
    return kid_length > 0 and len(data) >= 2 + kid_length + NONCE_BYTES + TAG_BYTES


def kid_of(envelope: bytes) -> str:
    if not is_envelope(envelope):
        raise DecryptionError("not an encryption envelope")
    try:
        return envelope[2 : 2 + envelope[1]].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("malformed encryption envelope") from None


def kid_of_base64(text: str) -> str | None:
    """The kid of a base64-encoded envelope, decoding only its header (so checking a large
    value's key costs the same as a small one's); None when `text` is not one."""
    try:
        head = base64.b64decode(text[:_HEADER_BASE64], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(head) < 3 or head[0] != VERSION or head[1] == 0 or len(head) < 2 + head[1]:
        return None
    try:
        return head[2 : 2 + head[1]].decode("ascii")
    except UnicodeDecodeError:
        return None


class EnvelopeCipher:
    """Seals and opens envelopes with a keyring; `strict` is for the callers that decide
    what a missing envelope means."""

    def __init__(self, keyring: Keyring, *, strict: bool = False) -> None:
        self.keyring = keyring
        self.strict = strict

    def seal(self, plaintext: bytes, context: Sequence[str]) -> bytes:
        kid = self.keyring.active_kid.encode("ascii")
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keyring.active_key).encrypt(nonce, plaintext, associated_data(context))
        return bytes((VERSION, len(kid))) + kid + nonce + sealed

    def open(self, envelope: bytes, context: Sequence[str]) -> bytes:
        kid = kid_of(envelope)
        key = self.keyring.key(kid)
        if key is None:
            raise DecryptionError(f"data was encrypted with key {kid!r}, which is not configured")
        start = 2 + envelope[1]
        nonce = envelope[start : start + NONCE_BYTES]
        try:
            return AESGCM(key).decrypt(
                nonce, envelope[start + NONCE_BYTES :], associated_data(context)
            )
        except InvalidTag:
            raise DecryptionError(
                "encrypted data failed authentication: it was altered or moved from another row"
            ) from None

    def is_current(self, envelope: bytes) -> bool:
        """Whether the envelope is already under the active key."""
        return kid_of(envelope) == self.keyring.active_kid

    def is_stale_kid(self, kid: str | None) -> bool:
        """Whether `kid` (of an envelope, None for no envelope) is an older key's: what
        lazy re-encryption looks for when a row is read."""
        return kid is not None and kid != self.keyring.active_kid

    def reseal(
        self, envelope: bytes, context: Sequence[str], new_context: Sequence[str] | None = None
    ) -> bytes:
        """The same plaintext under the active key (and `new_context`, for a copy)."""
        plaintext = self.open(envelope, context)
        return self.seal(plaintext, context if new_context is None else new_context)


__all__ = [
    "DecryptionError",
    "EnvelopeCipher",
    "PlaintextRefusedError",
    "associated_data",
    "is_envelope",
    "kid_of",
    "kid_of_base64",
    "refuse_plaintext",
]
