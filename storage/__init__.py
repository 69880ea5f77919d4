"""routekit storage: SQLite or PostgreSQL, migrations, repositories, envelope-encrypted secrets, usage ledger.

Open it with :func:`open_store` (no URL: the embedded SQLite database under ``$ROUTEKIT_HOME``).
This package imports only ``providers`` among routekit's packages.
"""

from storage.crypto import MASTER_KEY_ENV, Keyring, load_keyring, mask, parse_master_keys
from storage.errors import (
    BudgetExceeded,
    DatabaseUnavailable,
    DecryptionFailed,
    MasterKeyError,
    NotFound,
    SchemaTooNew,
    StorageBusy,
    StorageError,
    TokenExpired,
)
from storage.files import ensure_private_dir
from storage.keys import RotationReport
from storage.oauth import StoredTokenStorage
from storage.repositories import (
    IssuedToken,
    McpServerRecord,
    McpServerSecrets,
    ProviderConfigRecord,
    SessionRecord,
    StoredMessage,
    TokenInfo,
    ToolCallRecord,
    User,
)
from storage.store import SQLStore, Store, data_home, default_url, open_store
from storage.usage import BudgetStatus, UsageEntry, UsageRow, UsageTotals, price_usd

__all__ = [
    "MASTER_KEY_ENV",
    "BudgetExceeded",
    "BudgetStatus",
    "DatabaseUnavailable",
    "DecryptionFailed",
    "IssuedToken",
    "Keyring",
    "MasterKeyError",
    "McpServerRecord",
    "McpServerSecrets",
    "NotFound",
    "ProviderConfigRecord",
    "RotationReport",
    "SQLStore",
    "SchemaTooNew",
    "SessionRecord",
    "StorageBusy",
    "StorageError",
    "Store",
    "StoredMessage",
    "StoredTokenStorage",
    "TokenExpired",
    "TokenInfo",
    "ToolCallRecord",
    "UsageEntry",
    "UsageRow",
    "UsageTotals",
    "User",
    "data_home",
    "default_url",
    "ensure_private_dir",
    "load_keyring",
    "mask",
    "open_store",
    "parse_master_keys",
    "price_usd",
]
