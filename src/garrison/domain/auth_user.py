"""The authenticated user as custom auth handlers and graphs see it.

LangGraph code reads the user both ways — `user.identity` and `user["identity"]` — and
expects `display_name`, `is_authenticated` and `permissions` to exist. The same object
travels to workers as a plain dict inside the run's config and is rebuilt there.
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any


class AuthUser(Mapping[str, Any]):
    """An immutable user: the identity plus whatever else the authenticator returned."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        identity = fields.get("identity")
        if not isinstance(identity, str) or not identity:
            raise ValueError("a user needs a non-empty string identity")
        permissions = fields.get("permissions") or ()
        if isinstance(permissions, str) or not isinstance(permissions, Sequence):
            raise ValueError("a user's permissions must be a list of strings")
        self._fields: dict[str, Any] = {
            **fields,
            "identity": identity,
            "display_name": fields.get("display_name") or identity,
            "is_authenticated": bool(fields.get("is_authenticated", True)),
            "permissions": [str(p) for p in permissions],
        }

    @property
    def identity(self) -> str:
        return str(self._fields["identity"])

    @property
    def display_name(self) -> str:
        return str(self._fields["display_name"])

    @property
    def is_authenticated(self) -> bool:
        return bool(self._fields["is_authenticated"])

    @property
    def permissions(self) -> list[str]:
        return list(self._fields["permissions"])

    def __getattr__(self, name: str) -> Any:
        # Extra fields the authenticator returned (`user.org_id`), like the official server.
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"AuthUser(identity={self.identity!r})"

    def to_dict(self) -> dict[str, Any]:
        """What a run's config carries to the worker (JSON-safe when the extras are)."""
        return dict(self._fields)


__all__ = ["AuthUser"]
