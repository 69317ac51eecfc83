"""What the storage adapters need to encrypt at rest, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass

from langgraph.checkpoint.serde.base import SerializerProtocol

from garrison.config.security_settings import EncryptionSettings
from garrison.security.api_rows import ApiRowCipher
from garrison.security.checkpoint_cipher import CheckpointCipher
from garrison.security.envelope import EnvelopeCipher
from garrison.security.event_cipher import EventCipher
from garrison.security.field_cipher import FieldCipher
from garrison.security.keyring import load_keyring
from garrison.security.safe_serde import EnvelopeOnlySerializer, safe_serializer
from garrison.security.store_cipher import StoreCipher


@dataclass(frozen=True, slots=True)
class AtRestEncryption:
    """`envelopes` None: encryption is off (no keys configured). The serializer is strict
    either way (S9)."""

    envelopes: EnvelopeCipher | None = None
    msgpack_allowlist: tuple[str, ...] = ()
    sensitive_metadata_keys: tuple[str, ...] = tuple(
        EncryptionSettings.model_fields["sensitive_metadata_keys"].default
    )

    @classmethod
    def from_settings(
        cls, settings: EncryptionSettings, *, production: bool = False, strict: bool | None = None
    ) -> AtRestEncryption:
        """Raises KeyringError (start-up refusal) for unsafe or missing-but-required keys.
        `strict` overrides the setting (the rotation job must read plaintext rows)."""
        keyring = load_keyring(settings, production=production)
        strict = settings.strict if strict is None else strict
        envelopes = EnvelopeCipher(keyring, strict=strict) if keyring else None
        return cls(
            envelopes=envelopes,
            msgpack_allowlist=tuple(settings.msgpack_allowlist),
            sensitive_metadata_keys=tuple(settings.sensitive_metadata_keys),
        )

    @property
    def enabled(self) -> bool:
        return self.envelopes is not None

    def serializer(self) -> SerializerProtocol:
        """What the stock savers (de)serialize rows with."""
        if self.envelopes is not None and self.envelopes.strict:
            return EnvelopeOnlySerializer()
        return safe_serializer(self.msgpack_allowlist)

    def checkpoint_cipher(self) -> CheckpointCipher | None:
        """Seals and opens values; what it decrypts goes through the safe serializer."""
        if self.envelopes is None:
            return None
        return CheckpointCipher(self.envelopes, safe_serializer(self.msgpack_allowlist))

    def store_cipher(self) -> StoreCipher | None:
        return StoreCipher(self.envelopes) if self.envelopes else None

    def event_cipher(self) -> EventCipher | None:
        """Seals stream events kept in Redis for replay."""
        return EventCipher(self.envelopes) if self.envelopes else None

    def api_rows(self) -> ApiRowCipher:
        """Seals the API tables' fields (a pass-through when encryption is off)."""
        return ApiRowCipher(FieldCipher(self.envelopes, self.sensitive_metadata_keys))


__all__ = ["AtRestEncryption"]
