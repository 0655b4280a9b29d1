"""keys/packets.py is the one OpenPGP packet reader: the checks of key uploads and of the
messages keys/verify.py opens frame packets the same way, on real gpg output."""

import pytest

from keys import packets, verify
from tests import keyfactory
from tests import mailcorpus as mc


@pytest.fixture(scope="module")
def key():
    return keyfactory.ed25519_cv25519()


def test_a_key_is_framed_alike_by_the_upload_check_and_the_message_reader(key):
    checked = packets.packets(key.binary)
    walked = list(packets.walk(key.binary))

    assert [tag for tag, _ in walked] == [tag for tag, _ in checked] == [6, 13, 2, 14, 2]
    for (_, body), (_, raw) in zip(walked, checked, strict=True):
        assert raw.endswith(body) and len(raw) - len(body) in (2, 3, 6)  # the header alone


def test_a_message_in_partial_chunks_is_read_whole(key):
    # gpg streams a large message in partial-length chunks: walk() joins them.
    plaintext = bytes(range(256)) * 400
    binary = mc.gpg_encrypt(key.public, plaintext, compress_level=0, armor=False)
    armored = mc.gpg_encrypt(key.public, plaintext, compress_level=0)

    tags = [tag for tag, _ in packets.walk(binary)]
    assert tags == [1, 18]  # a session key for the subkey, then the encrypted data
    (_, sealed) = list(packets.walk(binary))[1]
    assert len(sealed) > len(plaintext)
    _, start, length, _ = packets.packet_header(binary, 0)
    assert packets.packet_header(binary, start + length)[3]  # its length is partial
    assert verify.looks_encrypted(binary) and verify.looks_encrypted(armored)


def test_a_message_cut_off_is_damaged_after_what_it_holds(key):
    binary = mc.gpg_encrypt(key.public, b"a report", armor=False)
    cut = binary[: len(binary) - 5]

    reader = packets.walk(cut)
    assert next(reader)[0] == 1  # the session key, whole
    with pytest.raises(packets.Damaged):
        list(reader)
    assert verify.looks_encrypted(cut)  # its beginning says what it is
