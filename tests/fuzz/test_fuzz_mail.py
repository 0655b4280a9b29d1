"""Fuzz the mail path: stored bytes -> mail.parse.parse (what the worker calls) and, fewer
cases, the whole app.reports.processing.process_inbound on a stored message.

parse() raises Unreadable and only that; an unexpected exception inside it becomes Unreadable
"(internal error)" with a warning naming the exception: that is a crash here too.
"""

import logging
from contextlib import contextmanager

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.models import InboundMessage
from app.reports import inbound, processing
from mail.parse import ParsedMessage, Unreadable, parse
from tests.fuzz.conftest import RAN, examples
from tests.fuzz.strategies import mime_message, openpgp_bytes


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@contextmanager
def logged(name: str):
    handler, logger = _Records(), logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def crash_of(records) -> str | None:
    """The exception parse() turned into "(internal error)", with its frames, if any."""
    for record in records:
        if record.getMessage().startswith("parsing a message failed"):
            return record.getMessage()
    return None


def readable(parsed: ParsedMessage) -> None:
    """What the worker stores is valid UTF-8 without NULs (PostgreSQL refuses both)."""
    for value in (parsed.subject, parsed.text, parsed.from_name, parsed.from_address):
        if value is not None:
            value.encode("utf-8")
            assert "\x00" not in value


def check_parse(raw: bytes, keyring) -> None:
    with logged("forewarn.mail.parse") as records:
        try:
            parsed = parse(raw, keyring)
        except Unreadable as error:
            crash = crash_of(records)
            assert "internal error" not in str(error), crash
            assert str(error) and "\n" not in str(error)
            return
    readable(parsed)
    assert crash_of(records) is None


@pytest.fixture(scope="module")
def samples(openpgp_samples):
    return openpgp_samples


@examples(200)
@given(data=st.data())
def test_parse_survives_random_mime_trees(service_keyring, samples, data):
    RAN["mail: parse(MIME tree)"] += 1
    check_parse(data.draw(mime_message(samples), label="raw"), service_keyring)


@examples(200)
@given(raw=st.binary(max_size=4096))
def test_parse_survives_random_bytes(service_keyring, raw):
    RAN["mail: parse(bytes)"] += 1
    check_parse(raw, service_keyring)


@examples(60)
@given(data=st.data())
def test_parse_survives_openpgp_in_a_plain_message(service_keyring, samples, data):
    """Armor fragments, real ciphertext cut up: inline, and as the data of PGP/MIME."""
    RAN["mail: parse(inline and PGP/MIME OpenPGP)"] += 1
    blob = data.draw(openpgp_bytes(samples), label="openpgp")
    if data.draw(st.booleans(), label="pgp/mime"):
        raw = (
            b"From: rita@example.org\r\nContent-Type: multipart/encrypted; boundary=e;"
            b' protocol="application/pgp-encrypted"\r\n\r\n--e\r\n'
            b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--e\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + blob + b"\r\n--e--\r\n"
        )
    else:
        raw = b"From: rita@example.org\r\nSubject: x\r\n\r\nBefore\r\n" + blob + b"\r\nAfter\r\n"
    check_parse(raw, service_keyring)


# -- the worker's whole step ----------------------------------------------------------------


@examples(30)
@given(data=st.data())
def test_process_inbound_ends_processed_quarantined_or_junk(
    settings, db, clock, service_keyring, samples, data
):
    RAN["mail: process_inbound"] += 1
    raw = data.draw(mime_message(samples) | st.binary(max_size=2048), label="raw")
    envelope_from = data.draw(st.sampled_from(("rita@example.org", "")), label="envelope_from")
    message_id = inbound.store(raw, envelope_from, [settings.security_address], clock.at)
    with logged("forewarn") as records:
        outcome = processing.process_inbound(message_id, service_keyring, settings, clock.at)
    state = InboundMessage.get_by_id(message_id).state
    assert state in ("processed", "quarantined", "junk"), (outcome, state)
    errors = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert not errors
    crash = crash_of(records)
    assert crash is None, crash


# -- bugs found here, now fixed ---------------------------------------------------------------

NOT_CHARSETS = ("base64", "rot13", "hex", "zlib", "quopri", "undefined", "idna", "punycode")


@examples(len(NOT_CHARSETS))
@example(charset="base64")
@example(charset="undefined")
@given(charset=st.sampled_from(NOT_CHARSETS))
def test_a_codec_that_is_no_charset_is_read_as_utf8(charset):
    raw = (
        b"From: rita@example.org\r\nSubject: x\r\n"
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n\r\nhello\r\n"
    )
    assert parse(raw, None).text == "hello"


@examples(3)
@example(body=b"+2D0-")
@given(body=st.sampled_from((b"+2D0-", b"hello +2D0- world", b"+++/////AAAAAAAAAAAbca/")))
def test_a_lone_surrogate_from_utf7_is_cleaned(body):
    raw = (
        b"From: rita@example.org\r\nSubject: x\r\n"
        b"Content-Type: text/plain; charset=utf-7\r\n\r\n" + body + b"\r\n"
    )
    with logged("forewarn.mail.parse") as records:
        try:
            parse(raw, None)  # any text, or Unreadable for a reason
        except Unreadable as error:
            assert "internal error" not in str(error), crash_of(records)
