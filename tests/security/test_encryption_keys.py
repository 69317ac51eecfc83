"""Key hygiene (target E5) and the envelope format (E4, unit level).

Unsafe keys stop the server at start-up with a message that names the problem and never
the key; the keyring never prints its keys.
"""

import base64
import contextlib
import logging
import os
from pathlib import Path

import pytest

from garrison.bootstrap import open_storage
from garrison.config.project import load_project
from garrison.config.security_settings import EncryptionSettings
from garrison.config.settings import Settings
from garrison.security.at_rest import AtRestEncryption
from garrison.security.envelope import (
    NONCE_BYTES,
    VERSION,
    DecryptionError,
    EnvelopeCipher,
    kid_of,
)
from garrison.security.keyring import Keyring, KeyringError, load_keyring
from tests.support.server import PROJECT, GarrisonProcess

SECRET = os.urandom(32)
SECRET_B64 = base64.b64encode(SECRET).decode()
OTHER_B64 = base64.b64encode(os.urandom(32)).decode()


def settings(**values: object) -> EncryptionSettings:
    return EncryptionSettings.model_validate(values)


def test_the_first_key_is_active_and_every_key_decrypts() -> None:
    keyring = load_keyring(settings(keys=f"new:{OTHER_B64}, old:{SECRET_B64}"))
    assert keyring is not None
    assert keyring.active_kid == "new" and keyring.kids == ("new", "old")
    assert keyring.key("old") == SECRET


def test_no_keys_means_encryption_is_off() -> None:
    assert load_keyring(settings()) is None
    assert not AtRestEncryption.from_settings(settings()).enabled


def test_keys_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2026-11\nnew:{OTHER_B64}\n\nold:{SECRET_B64}\n")
    keyring = load_keyring(settings(keys_file=str(path)))
    assert keyring is not None and keyring.kids == ("new", "old")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (f"k1:{base64.b64encode(os.urandom(16)).decode()}", "is 16 bytes; it must be 32"),
        (f"k1:{base64.b64encode(os.urandom(48)).decode()}", "is 48 bytes; it must be 32"),
        ("k1:correct-horse-battery-staple-passphrase!!", "is not valid base64"),
        (SECRET_B64, "is not `kid:base64"),
        (f"k1:{SECRET_B64},k1:{OTHER_B64}", "'k1' appears twice"),
        (f"k1:{SECRET_B64},k2:{SECRET_B64}", "repeats the bytes of another key"),
        (f"bad kid:{SECRET_B64}", "is invalid"),
    ],
)
def test_unsafe_keys_are_refused(keys: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message) as refused:
        load_keyring(settings(keys=keys))
    assert SECRET_B64 not in str(refused.value) and OTHER_B64 not in str(refused.value)


@pytest.mark.parametrize("where", ["required", "production"])
def test_missing_keys_are_refused_when_required(where: str) -> None:
    with pytest.raises(KeyringError, match="no keys are configured"):
        load_keyring(settings(required=where == "required"), production=where == "production")


def test_keys_never_appear_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    configured = settings(keys=f"k1:{SECRET_B64}")
    keyring = load_keyring(configured)
    cipher = EnvelopeCipher(keyring) if keyring else None
    shown = [repr(configured), str(configured), repr(keyring), repr(cipher)]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("garrison").info("settings %s keyring %r", configured, keyring)
    for text in [*shown, caplog.text]:
        assert SECRET_B64 not in text and repr(SECRET) not in text
    assert "k1" in repr(keyring)


async def test_storage_refuses_to_open_in_production_without_keys(tmp_path: Path) -> None:
    """Start-up path: the refusal comes before the database file is created."""
    loaded = Settings.load({"server": {"production": True}, "storage": {"data_dir": str(tmp_path)}})
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(KeyringError, match="required"):
            await open_storage(loaded, load_project(PROJECT), stack)
    assert not list(tmp_path.glob("*.sqlite*"))


def test_the_server_refuses_to_start_with_a_short_key(tmp_path: Path) -> None:
    short = base64.b64encode(b"0123456789abcdef").decode()
    server = GarrisonProcess(tmp_path, env={"GARRISON_ENCRYPTION_KEYS": f"k1:{short}"})
    with pytest.raises(RuntimeError, match="garrison exited early") as refused:
        server.start(timeout=60)
    server.kill()
    assert "it must be 32 random bytes" in str(refused.value)
    assert short not in server.log()


def test_envelopes_carry_version_kid_and_a_fresh_nonce() -> None:
    cipher = EnvelopeCipher(Keyring([("k1", SECRET)]))
    one = cipher.seal(b"same plaintext", ("tenant", "thread", "field"))
    two = cipher.seal(b"same plaintext", ("tenant", "thread", "field"))
    assert one[0] == VERSION and kid_of(one) == "k1"
    assert one[4 : 4 + NONCE_BYTES] != two[4 : 4 + NONCE_BYTES] and one != two
    assert b"same plaintext" not in one
    assert cipher.open(one, ("tenant", "thread", "field")) == b"same plaintext"


@pytest.mark.parametrize(
    "context",
    [("tenant-2", "thread", "field"), ("tenant", "thread-2", "field"), ("tenant", "thread", "f")],
)
def test_an_envelope_opens_only_in_its_own_context(context: tuple[str, ...]) -> None:
    cipher = EnvelopeCipher(Keyring([("k1", SECRET)]))
    sealed = cipher.seal(b"value", ("tenant", "thread", "field"))
    with pytest.raises(DecryptionError, match="failed authentication"):
        cipher.open(sealed, context)


def test_context_parts_cannot_be_shifted() -> None:
    cipher = EnvelopeCipher(Keyring([("k1", SECRET)]))
    sealed = cipher.seal(b"value", ("ab", "c"))
    with pytest.raises(DecryptionError):
        cipher.open(sealed, ("a", "bc"))


def test_a_tampered_envelope_fails() -> None:
    cipher = EnvelopeCipher(Keyring([("k1", SECRET)]))
    sealed = bytearray(cipher.seal(b"value", ("ctx",)))
    sealed[-1] ^= 1
    with pytest.raises(DecryptionError, match="failed authentication"):
        cipher.open(bytes(sealed), ("ctx",))
