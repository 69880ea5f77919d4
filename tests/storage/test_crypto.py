# ruff: noqa: PT018 - compound asserts keep each case on one line
"""storage.crypto: envelope encryption primitives and master-key parsing (no database)."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from storage.crypto import (
    KEY_FILE_NAME,
    AssociatedData,
    Keyring,
    generate_data_key,
    load_keyring,
    mask,
    open_sealed,
    parse_master_keys,
    seal,
    unwrap_data_key,
    wrap_data_key,
)
from storage.errors import DecryptionFailed, MasterKeyError
from tests.storage.conftest import KEY_V1, KEY_V2, b64

AD = AssociatedData("user-1", "provider_configs", "row-1", "api_key")


def test_round_trip() -> None:
    key = generate_data_key()
    blob = seal(key, 1, AD, b"sk-test-secret-value")
    assert b"sk-test" not in blob
    assert open_sealed(key, AD, blob) == b"sk-test-secret-value"


@pytest.mark.parametrize("position", [0, 3, 10, 20, -1])
def test_flipped_byte_fails(position: int) -> None:
    key = generate_data_key()
    blob = bytearray(seal(key, 1, AD, b"PLAINTEXT-xyz"))
    blob[position] ^= 0x01
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(key, AD, bytes(blob))
    assert "PLAINTEXT" not in str(info.value)


@pytest.mark.parametrize(
    "moved",
    [
        AssociatedData("user-2", "provider_configs", "row-1", "api_key"),  # another user
        AssociatedData("user-1", "provider_configs", "row-2", "api_key"),  # another row
        AssociatedData("user-1", "provider_configs", "row-1", "extra_headers"),  # another field
        AssociatedData("user-1", "mcp_servers", "row-1", "api_key"),  # another table
    ],
)
def test_ciphertext_moved_elsewhere_fails(moved: AssociatedData) -> None:
    key = generate_data_key()
    blob = seal(key, 1, AD, b"secret")
    with pytest.raises(DecryptionFailed):
        open_sealed(key, moved, blob)


def test_wrapped_data_key_is_bound_to_owner_and_master_key() -> None:
    ring = Keyring.single(KEY_V1)
    data_key = generate_data_key()
    version, wrapped = wrap_data_key(ring, "user-1", 1, data_key)
    assert version == "v1"
    assert unwrap_data_key(ring, "v1", "user-1", 1, wrapped) == data_key
    with pytest.raises(DecryptionFailed):
        unwrap_data_key(ring, "v1", "user-2", 1, wrapped)
    with pytest.raises(DecryptionFailed):
        unwrap_data_key(ring, "v1", "user-1", 2, wrapped)
    with pytest.raises(DecryptionFailed):
        unwrap_data_key(Keyring.single(KEY_V2), "v1", "user-1", 1, wrapped)
    with pytest.raises(DecryptionFailed):  # version not configured at all
        unwrap_data_key(ring, "v7", "user-1", 1, wrapped)


def test_parse_versioned_list() -> None:
    ring = parse_master_keys(f"v2:{b64(KEY_V2)}, v1:{b64(KEY_V1)}")
    assert ring.current == "v2"
    assert ring.versions == ("v2", "v1")
    assert ring.key("v1") == KEY_V1
    assert parse_master_keys(b64(KEY_V1)).current == "v1"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not base64!!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "5 bytes"),
        ("", "empty"),
        (f"v1:{b64(KEY_V1)},{b64(KEY_V2)}", "no version"),
        (f"v1:{b64(KEY_V1)},v1:{b64(KEY_V2)}", "twice"),
        (f"bad label!:{b64(KEY_V1)}", "invalid version"),
    ],
)
def test_malformed_master_key_is_refused_clearly(text: str, fragment: str) -> None:
    with pytest.raises(MasterKeyError) as info:
        parse_master_keys(text)
    assert fragment in str(info.value)
    assert b64(KEY_V1) not in str(info.value)


def test_key_file_created_with_0600_and_reused(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "home", environ={})
    path = tmp_path / "home" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_keyring(tmp_path / "home", environ={})
    assert again.key("v1") == ring.key("v1")
    os.chmod(path, 0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_keyring(tmp_path / "home", environ={})


def test_env_wins_over_key_file(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path, environ={"ROUTEKIT_MASTER_KEY": b64(KEY_V2)})
    assert ring.key("v1") == KEY_V2
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_secrets_never_in_repr() -> None:
    ring = parse_master_keys(f"v2:{b64(KEY_V2)},v1:{b64(KEY_V1)}")
    text = repr(ring) + str(ring)
    assert b64(KEY_V1) not in text and b64(KEY_V2) not in text
    assert "v2" in text


def test_mask_shows_last_four_only() -> None:
    assert mask("sk-abcdefghijklmnop") == "****mnop"
    assert mask(SecretStr("sk-abcdefghijklmnop")) == "****mnop"
    assert mask("short") == "****"
    assert mask(None) is None
