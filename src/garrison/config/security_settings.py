"""Settings of the security subsystems: authentication, encryption at rest, audit, limits.

Same layering as the other groups (`garrison.config.settings`): CLI overrides > environment
> the project file's group object > defaults. Secrets are `SecretStr` so that they never
show in a `repr`, a log line or a traceback.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from garrison.config.settings_base import Group

AuthMode = Literal["none", "api_key", "jwt"]


class AuthSettings(Group):
    """How callers prove who they are. `GARRISON_AUTH_MODE` or `auth.mode` in garrison.json;
    a project's `auth.path` (custom `langgraph_sdk.Auth`) takes precedence over the mode."""

    model_config = SettingsConfigDict(env_prefix="GARRISON_AUTH_", extra="ignore", frozen=True)

    mode: AuthMode = "none"
    # Role given to `none`-mode callers (local development): everything in the default tenant.
    anonymous_role: str = "admin"
    # JWT / OIDC. The JWKS comes from a URL (cached) or a file; never from the token itself.
    jwks_url: str | None = None
    jwks_file: Path | None = None
    jwks_cache_seconds: float = Field(default=300.0, ge=0)
    # A token naming an unknown `kid` refetches the JWKS at most this often (key rotation
    # without letting forged kids hammer the IdP); also the wait after a failed fetch.
    jwks_min_refetch_seconds: float = Field(default=30.0, ge=0)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    issuer: str | None = None
    audience: list[str] = []
    algorithms: list[str] = ["RS256", "ES256"]
    leeway_seconds: float = Field(default=30.0, ge=0)
    # Claim names that carry the tenant, the user and the roles (a list or a space-separated
    # string); dotted paths reach into nested claims (`realm_access.roles`).
    tenant_claim: str = "tenant"
    user_claim: str = "sub"
    roles_claim: str = "roles"
    # Role when the token carries none of the known roles; empty: such tokens are refused.
    default_role: str = ""
    # ID tokens are always refused (see `garrison.auth.jwt_verifier`); when set, the token's
    # `token_use` claim must also be present and equal this (e.g. "access" for Cognito).
    required_token_use: str | None = None


class EncryptionSettings(Group):
    """Encryption at rest. Keys: `GARRISON_ENCRYPTION_KEYS` = `kid:base64(32 bytes),...`
    (the first is active) or a file with one entry per line."""

    model_config = SettingsConfigDict(
        env_prefix="GARRISON_ENCRYPTION_", extra="ignore", frozen=True
    )

    keys: SecretStr | None = None
    keys_file: Path | None = None
    # Refuse to start without valid keys (always true in production).
    required: bool = False
    # After `garrison keys rotate-data`: plaintext rows are refused instead of read.
    strict: bool = False
    # Metadata keys whose values are encrypted (a key matches when its name contains one).
    sensitive_metadata_keys: list[str] = [
        "email",
        "phone",
        "ssn",
        "credit_card",
        "password",
        "token",
        "api_key",
        "personal_info",
    ]
    # Types (`module:Name`) the checkpoint serializer may rebuild beyond LangGraph's safe
    # set (messages, datetimes, Send...); anything else loads as plain data, never imported.
    msgpack_allowlist: list[str] = []


class AuditSettings(Group):
    """The audit log: authentication failures, denials and mutating calls always write a
    record when enabled; `record_reads` adds every other authenticated call (ASVS 16.3.1
    asks for every authentication success, so it defaults to on)."""

    model_config = SettingsConfigDict(env_prefix="GARRISON_AUDIT_", extra="ignore", frozen=True)

    enabled: bool = True
    record_reads: bool = True
    # Extra regular expressions redacted from logs and audit summaries.
    redact_patterns: list[str] = []


class LimitSettings(Group):
    """Per-caller limits. 0 disables a limit."""

    model_config = SettingsConfigDict(env_prefix="GARRISON_LIMIT_", extra="ignore", frozen=True)

    # Token bucket per API key (or user, or tenant; the client IP without a principal):
    # sustained rate, and burst (0: one second's worth). Shared through Redis when set.
    requests_per_second: float = Field(default=0.0, ge=0)
    burst: int = Field(default=0, ge=0)
    # Run creation is refused (429) while the tenant has this many runs waiting (`pending`)...
    max_queued_runs_per_tenant: int = Field(default=0, ge=0)
    # ...or this many in flight (`pending` + `running`): accepted and not yet finished.
    max_concurrent_runs_per_tenant: int = Field(default=0, ge=0)
    # Open SSE connections per key; shared by the API replicas through Redis when set.
    max_streams_per_key: int = Field(default=0, ge=0)


__all__ = [
    "AuditSettings",
    "AuthMode",
    "AuthSettings",
    "EncryptionSettings",
    "LimitSettings",
]
