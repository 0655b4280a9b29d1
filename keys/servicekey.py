"""The service key's life in its GnuPG home: generated or imported, its fingerprint and
listing, its certificate exported, its expiry read and renewed, the certifications it carries.

Every operation names the key by its fingerprint, never by a user id.
"""

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from keys import gpgrun
from keys.errors import KeyringError, KeySetupError
from keys.home import GPG_TIMEOUT_SECONDS, MAX_GPG_OUTPUT_BYTES, GnupgHome, require_gpg

# The service key's fingerprint per GnuPG home, with the state of its keyrings when listed.
_FINGERPRINTS: dict[Path, tuple[tuple, str]] = {}


class ServiceKey(GnupgHome):
    """The one secret key of a GnuPG home, through its life."""

    def fingerprint(self) -> str | None:
        """The service key's fingerprint, or None when there is no secret key yet.

        Remembered per home while its keyrings are unchanged (their files' size, inode and
        modification time): every message asks for it, and listing it spawns gpg."""
        state = self._keyring_state()
        remembered = _FINGERPRINTS.get(self.home)
        if remembered is not None and remembered[0] == state:
            return remembered[1]
        fingerprint = self._listed_fingerprint()
        if fingerprint is not None:
            _FINGERPRINTS[self.home] = (state, fingerprint)
        return fingerprint

    def _keyring_state(self) -> tuple:
        state = []
        for name in ("pubring.kbx", "pubring.gpg", "private-keys-v1.d", "secring.gpg"):
            try:
                found = os.stat(self.home / name)
            except OSError:
                state.append(None)
                continue
            # Not st_ctime: gpg-agent changes that of private-keys-v1.d each time it starts.
            state.append((found.st_ino, found.st_size, found.st_mtime_ns))
        return tuple(state)

    def _listed_fingerprint(self) -> str | None:
        """fingerprint() as gpg lists it now, never remembered."""
        secret = self.gpg.list_keys(secret=True)
        if len(secret) > 1:
            raise KeySetupError(
                f"the GnuPG home {self.home} holds {len(secret)} secret keys; "
                "it must hold the service key alone"
            )
        return secret[0]["fingerprint"] if secret else None

    def describe(self) -> dict:
        """The service key's listing (fingerprint, uids, expiry, subkeys) for status pages."""
        fingerprint = self._require_fingerprint()
        for key in self.gpg.list_keys(keys=[fingerprint]):
            if key["fingerprint"] == fingerprint:
                return key
        raise KeyringError(f"the service key {fingerprint} has no public part")

    def generate(self, email: str, expire: str = "2y") -> str:
        """An ed25519 signing primary with a cv25519 encryption subkey; returns the fingerprint."""
        params = {
            "key_type": "EDDSA",
            "key_curve": "ed25519",
            "key_usage": "sign",
            "subkey_type": "ECDH",
            "subkey_curve": "cv25519",
            "subkey_usage": "encrypt",
            "name_real": "Forewarn security team",
            "name_email": email,
            "expire_date": expire,
        }
        if self.passphrase:
            params["passphrase"] = self.passphrase
        else:
            params["no_protection"] = True
        with self._lock():
            if self._listed_fingerprint() is not None:
                raise KeyringError("a service key already exists")
            result = self.gpg.gen_key(self.gpg.gen_key_input(**params))
        if not result.fingerprint:
            raise KeyringError(
                f"gpg could not generate the service key: {gpgrun.said(result.stderr)}"
            )
        return result.fingerprint

    def import_secret(self, data: bytes) -> str:
        """Make the secret key in data the service key; returns its fingerprint."""
        listed = self.gpg.scan_keys_mem(data)
        primaries = {key["fingerprint"] for key in listed if key.get("fingerprint")}
        if len(primaries) != 1:
            raise KeySetupError(
                f"the file holds {len(primaries)} keys; export exactly one secret key "
                "(gpg --export-secret-keys --armor FINGERPRINT)"
            )
        if not any(key.get("type") == "sec" for key in listed):
            raise KeySetupError(
                "the file holds no secret key; export it with gpg --export-secret-keys --armor"
            )
        (fingerprint,) = primaries
        with self._lock():
            current = self._listed_fingerprint()
            if current not in (None, fingerprint):
                raise KeySetupError(
                    f"this instance already has the service key {current}; "
                    "move its GnuPG home away first if you mean to replace it"
                )
            self._check_usable(data, fingerprint)
            result = self.gpg.import_keys(data, passphrase=self.passphrase)
            if not result.sec_imported and not result.sec_read:
                raise KeyringError(
                    f"gpg did not import the secret key: {gpgrun.said(result.stderr)}"
                )
            # We trust our own key; otherwise gpg warns on every signature.
            self.gpg.trust_keys([fingerprint], "TRUST_ULTIMATE")
        return fingerprint

    def _check_usable(self, data: bytes, fingerprint: str) -> None:
        """Sign once with the key in a throwaway home, so a wrong passphrase (gpg imports
        protected keys without checking it) is found now, not at the first advisory."""
        with tempfile.TemporaryDirectory(prefix="fwk", dir="/tmp") as scratch:
            # A keyring of the same kind as this one: it signs (keys/keyring.py).
            trial = type(self)(Path(scratch), self.passphrase)
            try:
                imported = trial.gpg.import_keys(data, passphrase=self.passphrase)
                if not imported.sec_imported and not imported.sec_read:
                    raise KeySetupError(
                        f"gpg cannot import the secret key: {gpgrun.said(imported.stderr)}"
                    )
                trial.gpg.trust_keys([fingerprint], "TRUST_ULTIMATE")
                trial.sign_detached(b"forewarn: checking the service key")
            except KeyringError:
                raise KeySetupError(
                    "the key cannot sign with the passphrase given: check "
                    "FOREWARN_KEY_PASSPHRASE_FILE (or set it, if the key has a passphrase)"
                ) from None
            finally:
                trial.stop_agent()

    def export_public(self) -> str:
        fingerprint = self._require_fingerprint()
        armored = self.gpg.export_keys([fingerprint], armor=True, minimal=True)
        if "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
            raise KeyringError("gpg did not export the service key")
        return armored

    def expiry(self) -> datetime | None:
        """When the service key stops working: the earliest expiry of its primary key and its
        subkeys (aware UTC), or None when none of them expires."""
        return expiry_of(self.describe())

    def certified_by(self, fingerprint: str) -> bool:
        """Whether a user id of the service key carries a certification issued by the key
        `fingerprint` (by its key id: that key is not in this keyring, so gpg cannot check the
        signature itself; a recipient who holds it can)."""
        service = self._require_fingerprint()
        keyid = fingerprint.replace(" ", "").upper()[-16:]
        for key in self.gpg.list_keys(keys=[service], sigs=True):
            if key["fingerprint"] != service:
                continue
            for issuer, _uid, sig_class in key.get("sigs", ()):
                if issuer.upper() == keyid and sig_class[:2] in ("10", "11", "12", "13"):
                    return True
        return False

    def renew(self, years: int = 2) -> datetime | None:
        """Extend the expiry of the primary key and every subkey to `years` from now (gpg
        --quick-set-expire); returns the new expiry as expiry() reads it back."""
        if not 1 <= years <= 50:
            raise KeyringError("the key can be renewed for 1 to 50 years")
        fingerprint = self._require_fingerprint()
        listing = self.describe()
        # By fingerprint, not "*": gpg's "*" skips subkeys that have already expired, which
        # are exactly the ones a late renewal must bring back. Revoked ones stay revoked.
        info = listing.get("subkey_info", {})
        subkeys = [
            sub[2]
            for sub in listing.get("subkeys", ())
            if len(sub) > 2 and sub[2] and info.get(sub[0], {}).get("trust") != "r"
        ]
        binary = require_gpg()
        base = [binary, "--homedir", str(self.home), "--batch", "--pinentry-mode", "loopback"]
        if self.passphrase:
            base += ["--passphrase-fd", "0"]
        with self._lock():
            for extra in ([], subkeys) if subkeys else ([],):  # the primary, then its subkeys
                done = gpgrun.run(
                    [*base, "--quick-set-expire", fingerprint, f"{years}y", *extra],
                    input=(self.passphrase or "").encode("utf-8"),
                    error=KeyringError,
                    timeout=GPG_TIMEOUT_SECONDS,
                    max_output=MAX_GPG_OUTPUT_BYTES,
                )
                if done.returncode != 0:
                    said = gpgrun.said(done.stderr.decode("utf-8", "replace"))
                    raise KeyringError(f"gpg could not renew the service key: {said}")
        return self.expiry()

    def _require_fingerprint(self) -> str:
        fingerprint = self.fingerprint()
        if fingerprint is None:
            raise KeySetupError("there is no service key yet: run `forewarn init`")
        return fingerprint


def expiry_of(listing: dict) -> datetime | None:
    """The earliest expiry of a key listing's primary key and subkeys (aware UTC), or None."""
    stamps = [listing.get("expires")]
    stamps += [info.get("expires") for info in listing.get("subkey_info", {}).values()]
    found = [datetime.fromtimestamp(int(s), UTC) for s in stamps if s and s.isdigit()]
    return min(found) if found else None
