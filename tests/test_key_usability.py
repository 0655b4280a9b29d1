"""One rule for whether a product maker's key can still be encrypted to (keys.inspect.encrypts_at),
judged against what real gpg does: the primary key's expiry counts, not only the subkey's."""

from datetime import UTC, datetime, timedelta

import pytest

from keys.errors import KeyringError
from keys.inspect import encrypts_at
from tests import keyfactory
from tests.mailcorpus import run


def expiries(key: keyfactory.Key) -> tuple[datetime | None, datetime | None]:
    """(primary, encryption subkey) expiry of a certificate, as gpg lists them."""
    listing = run("gpg", "--with-colons", "--show-keys", input=key.public).decode()
    found = {}
    for fields in (line.split(":") for line in listing.splitlines()):
        if fields[0] in ("pub", "sub"):
            found[fields[0]] = datetime.fromtimestamp(int(fields[6]), UTC) if fields[6] else None
    return found["pub"], found["sub"]


def test_a_key_whose_primary_expired_is_not_encrypted_to_though_its_subkey_lives_on(keyring):
    # Made on 2020-01-01: the primary expired on 2020-12-31, the encryption subkey lives to 2029.
    key = keyfactory.gpg_key(expire="1y", sub_expire="10y", faked_time=keyfactory.PAST)
    primary, subkey = expiries(key)
    now = datetime.now(UTC)  # gpg judges by the real clock
    assert primary < now < subkey

    # Judging by the subkey's expiry alone would call it usable; gpg does not.
    with pytest.raises(KeyringError, match=key.fingerprint):
        keyring.encrypt_to(key.public.decode(), key.fingerprint, b"an alert")
    assert not encrypts_at(primary, subkey, now)


def test_a_key_whose_primary_and_subkey_both_live_is_encrypted_to_until_the_first_ends(keyring):
    key = keyfactory.subkey_outlives_primary()  # primary for a year, the subkey for ever
    primary, subkey = expiries(key)
    now = datetime.now(UTC)
    assert subkey is None and primary > now

    armored = keyring.encrypt_to(key.public.decode(), key.fingerprint, b"an alert")

    assert armored.startswith("-----BEGIN PGP MESSAGE-----")
    assert encrypts_at(primary, subkey, now)
    assert not encrypts_at(primary, subkey, primary)
    assert not encrypts_at(primary, subkey, primary + timedelta(days=1))
    assert encrypts_at(None, None, now + timedelta(days=365 * 50))  # nothing ever expires
