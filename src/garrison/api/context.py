"""Per-request access to the services and the caller."""

from fastapi import Request

from garrison.domain.principal import ANONYMOUS, Principal
from garrison.services.container import Services


def services(request: Request) -> Services:
    container: Services = request.app.state.services
    return container


def principal(request: Request) -> Principal:
    """The authenticated caller; the fixed default tenant until authentication is enabled."""
    caller: Principal = getattr(request.state, "principal", ANONYMOUS)
    return caller
