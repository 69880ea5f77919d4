"""Errors raised by the storage layer.

They extend the project's taxonomy root (:class:`providers.errors.RoutekitError`) and always say what
to do. None of them ever carries a secret: messages name tables, users and key *versions*, never key
material or plaintext.
"""

from __future__ import annotations

from providers.errors import ConfigError, RoutekitError


class StorageError(RoutekitError):
    """Something in the storage layer failed in a way the caller should hear about."""


class MasterKeyError(StorageError, ConfigError):
    """The master key is missing, malformed or does not match the database. Raised at start-up."""


class DatabaseUnavailable(StorageError):
    """The database URL cannot be reached or opened."""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer routekit than this one; it is left untouched."""


class StorageBusy(StorageError):
    """The database stayed locked by another process for longer than the configured patience."""


class DecryptionFailed(StorageError):
    """A sealed value could not be opened (wrong key, tampering, or moved to another row)."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"cannot decrypt {where}: the value was tampered with, moved, or sealed under a master key "
            "that is not configured. Re-enter the secret to reconfigure it."
        )


class NotFound(StorageError, LookupError):
    """A row the caller asked for does not exist."""


class TokenExpired(StorageError):
    """An API token that exists and is not revoked, but whose validity has ended."""

    def __init__(self, expires_at: float) -> None:
        self.expires_at = expires_at
        super().__init__("the API token has expired: ask the administrator for a new one")


class BudgetExceeded(StorageError):
    """A user's monthly budget is spent (raised only by callers that choose to enforce it)."""
