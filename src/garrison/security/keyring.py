"""The data-encryption keys, loaded once at start-up and refused when unsafe.

Keys come as `kid:base64(32 random bytes)` entries, from `GARRISON_ENCRYPTION_KEYS`
(comma-separated) or `encryption.keys_file` (one per line, `#` comments). The first entry
is the active key, used for every new write; the others only decrypt, so that rows written
under an older key stay readable until `garrison keys rotate-data` re-encrypts them.

Anything that could weaken the keys stops the server instead of running with them: a key
that is not exactly 32 bytes of base64 (a passphrase typed as text would be low-entropy),
a kid used twice, the same key under two kids, or no keys at all when they are required.
The key bytes never reach a `repr`, a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from garrison.config.security_settings import EncryptionSettings
from garrison.domain.errors import InvalidArgumentError

KEY_BYTES = 32  # AES-256
# A kid is stored in every envelope (one length byte), so it stays short and printable.
_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class KeyringError(InvalidArgumentError):
    """The configured keys are unusable (a start-up refusal); the message never contains
    key material."""


class Keyring:
    """Key ids to 32-byte keys; `active_kid` encrypts, every key decrypts."""

    __slots__ = ("_keys", "active_kid")

    def __init__(self, entries: Iterable[tuple[str, bytes]]) -> None:
        keys: dict[str, bytes] = {}
        for kid, key in entries:
            if not _KID.match(kid):
                raise KeyringError(
                    f"encryption key id {kid!r} is invalid: use 1-64 letters, digits, '.', '_', '-'"
                )
            if kid in keys:
                raise KeyringError(f"encryption key id {kid!r} appears twice")
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"encryption key {kid!r} is {len(key)} bytes; it must be {KEY_BYTES} random"
                    " bytes, base64-encoded (e.g. `openssl rand -base64 32`)"
                )
            if key in keys.values():
                raise KeyringError(f"encryption key {kid!r} repeats the bytes of another key")
            keys[kid] = key
        if not keys:
            raise KeyringError("no encryption keys were given")
        self._keys: Mapping[str, bytes] = keys
        self.active_kid = next(iter(keys))

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @property
    def active_key(self) -> bytes:
        return self._keys[self.active_kid]

    def key(self, kid: str) -> bytes | None:
        return self._keys.get(kid)

    def __repr__(self) -> str:
        return f"Keyring(active={self.active_kid!r}, kids={list(self._keys)!r})"


def parse_entries(text: str, *, separators: str = ",\n") -> list[tuple[str, bytes]]:
    """`kid:base64` entries split on any of `separators`; blank entries and `#` comments
    are skipped."""
    entries: list[tuple[str, bytes]] = []
    for raw in re.split(f"[{re.escape(separators)}]", text):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        kid, sep, encoded = entry.partition(":")
        kid = kid.strip()
        if not sep or not kid:
            raise KeyringError(
                f"encryption key entry number {len(entries) + 1} is not `kid:base64(32 bytes)`"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyringError(f"encryption key {kid!r} is not valid base64") from None
        entries.append((kid, key))
    return entries


def load_keyring(settings: EncryptionSettings, *, production: bool = False) -> Keyring | None:
    """The keyring the settings describe; None when encryption is off (no keys and none
    required). Raises KeyringError for unsafe keys, and for missing keys when
    `encryption.required` is set or the server runs in production."""
    texts: list[str] = []
    if settings.keys is not None and settings.keys.get_secret_value().strip():
        texts.append(settings.keys.get_secret_value())
    if settings.keys_file is not None:
        texts.append(_read_keys_file(settings.keys_file))
    entries = [entry for text in texts for entry in parse_entries(text)]
    if not entries:
        if settings.required or production:
            raise KeyringError(
                "encryption at rest is required (encryption.required, or server.production)"
                " but no keys are configured: set GARRISON_ENCRYPTION_KEYS to"
                " `kid:base64(32 random bytes)` or GARRISON_ENCRYPTION_KEYS_FILE"
            )
        return None
    return Keyring(entries)


def _read_keys_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyringError(
            f"cannot read encryption keys file {str(path)!r}: {exc.strerror}"
        ) from None


__all__ = ["KEY_BYTES", "Keyring", "KeyringError", "load_keyring", "parse_entries"]
