"""Choose the authenticator the settings ask for, and refuse unsafe combinations."""

import logging

from garrison.auth.authenticators import (
    AnonymousAuthenticator,
    ApiKeyAuthenticator,
    Authenticator,
    JwtAuthenticator,
)
from garrison.auth.roles import KNOWN_ROLES
from garrison.config.project import ProjectConfig
from garrison.config.settings import Settings
from garrison.domain.errors import InvalidArgumentError
from garrison.storage.ports import Storage

logger = logging.getLogger("garrison.auth")


def check_auth_settings(settings: Settings, project: ProjectConfig) -> None:
    """Raise InvalidArgumentError for a configuration that must not serve."""
    auth = settings.auth
    if project.auth and project.auth.get("path"):
        # Serving the project without its handlers would expose what its author protected.
        raise InvalidArgumentError(
            "auth.path (custom langgraph_sdk.Auth handlers) is not supported yet; "
            "use auth.mode api_key or jwt"
        )
    if auth.mode == "none" and settings.server.production:
        raise InvalidArgumentError(
            "auth mode 'none' is refused in production: set GARRISON_AUTH_MODE to api_key or jwt"
        )
    if auth.anonymous_role not in KNOWN_ROLES:
        raise InvalidArgumentError(f"auth anonymous_role must be one of {sorted(KNOWN_ROLES)}")
    if auth.mode == "jwt" and not (auth.jwks_url or auth.jwks_file):
        raise InvalidArgumentError("auth mode 'jwt' needs auth.jwks_url or auth.jwks_file")
    if auth.mode == "jwt" and settings.server.production and not (auth.audience and auth.issuer):
        # Without them, a token the same IdP minted for another application would do.
        raise InvalidArgumentError("auth mode 'jwt' in production needs auth.audience and issuer")


def build_authenticator(settings: Settings, storage: Storage) -> Authenticator:
    mode = settings.auth.mode
    if mode == "api_key":
        return ApiKeyAuthenticator(storage.api_keys)
    if mode == "jwt":
        from garrison.auth.jwt_verifier import JwtVerifier

        try:
            return JwtAuthenticator(JwtVerifier(settings.auth))
        except ValueError as exc:
            raise InvalidArgumentError(f"auth: {exc}") from None
    logger.warning(
        "AUTHENTICATION IS OFF (auth mode 'none'): every caller acts as %s of tenant "
        "'default'. Set GARRISON_AUTH_MODE=api_key or jwt before exposing this server.",
        settings.auth.anonymous_role,
    )
    return AnonymousAuthenticator(settings.auth.anonymous_role)


__all__ = ["build_authenticator", "check_auth_settings"]
