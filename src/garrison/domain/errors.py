"""Domain errors. The API layer maps each class to one HTTP status."""


class GarrisonError(Exception):
    """Base of every error Garrison raises on purpose; its message is safe to show a client."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(GarrisonError):
    """The resource does not exist (or is not visible to the caller)."""


class ConflictError(GarrisonError):
    """The request conflicts with the current state (duplicate id, busy thread...)."""


class InvalidArgumentError(GarrisonError):
    """A value has the wrong form: bad id, unknown enum member, invalid cron expression."""


class BadRequestError(GarrisonError):
    """Well-formed values that cannot be honoured together (e.g. context and configurable)."""


class AuthenticationError(GarrisonError):
    """The caller did not prove who it is (401)."""


class PermissionDeniedError(GarrisonError):
    """The caller is known but may not do this (403)."""


class TooManyRequestsError(GarrisonError):
    """A rate or concurrency limit was hit (429); `retry_after` seconds is a fair wait."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UnavailableError(GarrisonError):
    """A dependency (storage, broker) is unreachable; the client may retry."""


class LeaseLostError(GarrisonError):
    """This attempt no longer owns its run (another worker took it over): stop, write nothing."""
