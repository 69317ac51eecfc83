"""Choose the authenticator and authorizer the settings ask for, and refuse unsafe
combinations."""

import logging
from dataclasses import dataclass

from garrison.auth.authenticators import (
    AnonymousAuthenticator,
    ApiKeyAuthenticator,
    Authenticator,
    JwtAuthenticator,
)
from garrison.auth.ownership import OwnershipAuthorizer
from garrison.auth.roles import KNOWN_ROLES
from garrison.config.project import ProjectConfig
from garrison.config.settings import Settings
from garrison.domain.errors import InvalidArgumentError
from garrison.runtime.loader import import_object
from garrison.services.authorization import Authorizer
from garrison.storage.ports import Storage

logger = logging.getLogger("garrison.auth")


def check_auth_settings(settings: Settings, project: ProjectConfig) -> None:
    """Raise InvalidArgumentError for a configuration that must not serve."""
    auth = settings.auth
    if custom_auth_path(project) is not None:
        return  # the project's own handlers decide; the mode settings do not apply
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


def custom_auth_path(project: ProjectConfig) -> str | None:
    """`auth.path` in the project file: "./auth.py:auth" names a `langgraph_sdk.Auth`."""
    path = (project.auth or {}).get("path")
    if path is not None and not isinstance(path, str):
        raise InvalidArgumentError("auth.path must be a string like './auth.py:auth'")
    return path or None


@dataclass(frozen=True, slots=True)
class AccessControl:
    """Who the caller is (per request, before routing) and what each operation may touch."""

    authenticator: Authenticator
    authorizer: Authorizer


def build_access_control(
    settings: Settings, project: ProjectConfig, storage: Storage
) -> AccessControl:
    path = custom_auth_path(project)
    if path is not None:
        return _custom_access_control(path, project)
    return AccessControl(build_authenticator(settings, storage), OwnershipAuthorizer())


def _custom_access_control(path: str, project: ProjectConfig) -> AccessControl:
    from langgraph_sdk import Auth

    from garrison.auth.custom_authenticator import AuthCache, CustomAuthenticator
    from garrison.auth.custom_handlers import HandlerAuthorizer

    auth = import_object(path, project.root)
    if not isinstance(auth, Auth):
        raise InvalidArgumentError(f"auth.path {path!r} is not a langgraph_sdk.Auth instance")
    try:
        cache = AuthCache.from_project((project.auth or {}).get("cache"))
        authenticator = CustomAuthenticator(auth, cache)
    except ValueError as exc:
        raise InvalidArgumentError(f"auth.path {path!r}: {exc}") from None
    logger.info("custom authentication and authorization from %s", path)
    return AccessControl(authenticator, HandlerAuthorizer(auth))


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


__all__ = [
    "AccessControl",
    "build_access_control",
    "build_authenticator",
    "check_auth_settings",
    "custom_auth_path",
]
