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


class UnavailableError(GarrisonError):
    """A dependency (storage, broker) is unreachable; the client may retry."""


class LeaseLostError(GarrisonError):
    """This attempt no longer owns its run (another worker took it over): stop, write nothing."""
