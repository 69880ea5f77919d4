"""Envelope encryption for per-user secrets.

Layout:

* a **master key** (32 bytes, versioned: ``v1``, ``v2``, ...) comes from ``ROUTEKIT_MASTER_KEY`` or from a
  key file created on first use with 0600 permissions. It never touches the database;
* each owner (a user, or ``""`` for global rows) has a **data key** (32 random bytes) stored only
  *wrapped* (AES-256-GCM under the master key, associated data = owner + generation);
* each secret is **sealed** with the owner's data key (AES-256-GCM); the associated data binds the
  ciphertext to its owner, table, row and field, so a ciphertext copied anywhere else fails to open.

Rotating the master key re-wraps data keys only (cheap, online). Rotating a data key re-seals that
owner's secrets. Everything here is pure (no I/O except :func:`load_keyring`'s key file).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from storage.errors import DecryptionFailed, MasterKeyError
from storage.files import ensure_private_dir

MASTER_KEY_ENV = "ROUTEKIT_MASTER_KEY"
KEY_FILE_NAME = "master.key"
KEY_BYTES = 32
_NONCE_BYTES = 12
_FORMAT = 1  # first byte of every sealed value and wrapped key
_HEADER_BYTES = 1 + 4 + _NONCE_BYTES  # format, data-key generation, nonce
_VERSION_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_CHECK_PLAINTEXT = b"routekit master key check"

__all__ = [
    "KEY_FILE_NAME",
    "MASTER_KEY_ENV",
    "AssociatedData",
    "Keyring",
    "generate_data_key",
    "load_keyring",
    "make_key_check",
    "mask",
    "open_sealed",
    "parse_master_keys",
    "seal",
    "sealed_generation",
    "unwrap_data_key",
    "verify_key_check",
    "wrap_data_key",
]


# --------------------------------------------------------------------------- secrets helpers


def mask(value: str | SecretStr | None) -> str | None:
    """The masked form shown to users: the last 4 characters, only when the secret is long enough.

    A secret shorter than 8 characters is fully hidden, since its last 4 would be half of it.
    """
    if value is None:
        return None
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if len(text) < 8:
        return "****"
    return "****" + text[-4:]


# --------------------------------------------------------------------------- master keys


@dataclass(frozen=True)
class Keyring:
    """Master keys by version. ``current`` wraps new data keys; the others only unwrap old ones."""

    current: str
    _keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.current not in self._keys:
            raise MasterKeyError(f"master key version {self.current!r} is not in the keyring")

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def key(self, version: str) -> bytes | None:
        return self._keys.get(version)

    def __repr__(self) -> str:
        return f"Keyring(current={self.current!r}, versions={list(self._keys)!r})"

    @classmethod
    def single(cls, key: bytes, version: str = "v1") -> Keyring:
        """A keyring with one key (tests and tools)."""
        _check_length(key, version, "argument")
        return cls(current=version, _keys={version: key})

    def with_current(self, version: str, key: bytes) -> Keyring:
        """A copy where ``version`` (new or existing) becomes the current key; the old ones stay for unwrapping."""
        _check_length(key, version, "argument")
        keys = {version: key, **{v: k for v, k in self._keys.items() if v != version}}
        return Keyring(current=version, _keys=keys)


def _check_length(key: bytes, version: str, source: str) -> None:
    if len(key) != KEY_BYTES:
        raise MasterKeyError(
            f"master key {version!r} from {source} is {len(key)} bytes; it must be {KEY_BYTES} bytes, base64-encoded. "
            f'Generate one with: python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
        )


def parse_master_keys(text: str, *, source: str = MASTER_KEY_ENV) -> Keyring:
    """Parse ``BASE64`` or a versioned list ``v2:BASE64,v1:BASE64`` (the first entry is current).

    The error never quotes the key text, only its position and version.
    """
    entries = [e.strip() for e in text.replace("\n", ",").split(",") if e.strip()]
    if not entries:
        raise MasterKeyError(f"{source} is empty: set it to a base64-encoded 32-byte key (or 'v1:KEY,...').")
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(entries, start=1):
        version, sep, encoded = entry.partition(":")
        if not sep:
            if len(entries) > 1:
                raise MasterKeyError(
                    f"{source}: entry {position} has no version; with several keys write 'v2:KEY,v1:KEY'."
                )
            version, encoded = "v1", entry
        version = version.strip()
        if not _VERSION_RE.fullmatch(version):
            raise MasterKeyError(f"{source}: entry {position} has an invalid version label (use letters, digits, _ -).")
        if version in keys:
            raise MasterKeyError(f"{source}: version {version!r} appears twice.")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise MasterKeyError(
                f"{source}: the key for version {version!r} is not valid base64. Set a base64-encoded 32-byte key."
            ) from None
        _check_length(key, version, source)
        keys[version] = key
    return Keyring(current=next(iter(keys)), _keys=keys)


def load_keyring(data_dir: Path, *, environ: Mapping[str, str] | None = None, create: bool = True) -> Keyring:
    """Master keys from ``ROUTEKIT_MASTER_KEY``, else from ``<data_dir>/master.key`` (created with 0600)."""
    env = os.environ if environ is None else environ
    text = env.get(MASTER_KEY_ENV)
    if text is not None:
        return parse_master_keys(text)
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise MasterKeyError(
                f"master key file {path} is readable by other users (mode {mode:o}); run: chmod 600 {path}"
            )
        return parse_master_keys(path.read_text(encoding="ascii", errors="replace"), source=str(path))
    if not create:
        raise MasterKeyError(f"no master key: set {MASTER_KEY_ENV} or create {path}.")
    ensure_private_dir(data_dir)
    key = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return load_keyring(data_dir, environ=env, create=False)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(f"v1:{key}\n")
        handle.flush()
        os.fsync(handle.fileno())
    return parse_master_keys(path.read_text(encoding="ascii"), source=str(path))


def make_key_check(keyring: Keyring, version: str) -> bytes:
    """A value stored in the database that proves which master key a version label stood for."""
    key = keyring.key(version)
    if key is None:
        raise MasterKeyError(f"master key version {version!r} is not configured")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, _CHECK_PLAINTEXT, b"routekit:check:" + version.encode())


def verify_key_check(keyring: Keyring, version: str, check: bytes) -> bool:
    key = keyring.key(version)
    if key is None:
        return False
    try:
        AESGCM(key).decrypt(check[:_NONCE_BYTES], check[_NONCE_BYTES:], b"routekit:check:" + version.encode())
    except InvalidTag:
        return False
    return True


# --------------------------------------------------------------------------- data keys


def generate_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def _wrap_ad(owner: str, generation: int, version: str) -> bytes:
    return json.dumps(["routekit-dk", _FORMAT, owner, generation, version]).encode()


def wrap_data_key(keyring: Keyring, owner: str, generation: int, data_key: bytes) -> tuple[str, bytes]:
    """Wrap ``data_key`` under the current master key; returns (master version, wrapped bytes)."""
    version = keyring.current
    key = keyring.key(version)
    assert key is not None  # guaranteed by Keyring.__post_init__
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, data_key, _wrap_ad(owner, generation, version))
    return version, bytes([_FORMAT]) + nonce + sealed


def unwrap_data_key(keyring: Keyring, version: str, owner: str, generation: int, wrapped: bytes) -> bytes:
    """Open a wrapped data key. DecryptionFailed when the master key is missing, wrong, or the blob moved."""
    where = f"the data key of owner {owner!r} (generation {generation}, master key {version!r})"
    key = keyring.key(version)
    if key is None or len(wrapped) < 1 + _NONCE_BYTES + 16 or wrapped[0] != _FORMAT:
        raise DecryptionFailed(where)
    try:
        return AESGCM(key).decrypt(
            wrapped[1 : 1 + _NONCE_BYTES], wrapped[1 + _NONCE_BYTES :], _wrap_ad(owner, generation, version)
        )
    except InvalidTag:
        raise DecryptionFailed(where) from None


# --------------------------------------------------------------------------- sealed values


@dataclass(frozen=True, slots=True)
class AssociatedData:
    """Where a sealed value lives. Opening it anywhere else fails."""

    owner: str
    table: str
    row: str
    field: str

    def encode(self, header: bytes) -> bytes:
        return header + json.dumps(["routekit-seal", self.owner, self.table, self.row, self.field]).encode()

    def describe(self) -> str:
        return f"{self.table}.{self.field} of row {self.row!r} (owner {self.owner!r})"


def seal(data_key: bytes, generation: int, ad: AssociatedData, plaintext: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    header = bytes([_FORMAT]) + generation.to_bytes(4, "big") + nonce
    return header + AESGCM(data_key).encrypt(nonce, plaintext, ad.encode(header))


def sealed_generation(blob: bytes) -> int | None:
    """The data-key generation a sealed value was made with (None if the blob is not a sealed value)."""
    if len(blob) < _HEADER_BYTES + 16 or blob[0] != _FORMAT:
        return None
    return int.from_bytes(blob[1:5], "big")


def open_sealed(data_key: bytes, ad: AssociatedData, blob: bytes) -> bytes:
    if sealed_generation(blob) is None:
        raise DecryptionFailed(ad.describe())
    header = blob[:_HEADER_BYTES]
    try:
        return AESGCM(data_key).decrypt(blob[5:_HEADER_BYTES], blob[_HEADER_BYTES:], ad.encode(header))
    except InvalidTag:
        raise DecryptionFailed(ad.describe()) from None
