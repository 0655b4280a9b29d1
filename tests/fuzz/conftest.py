"""The fuzz targets' settings and shared fixtures.

`make test` runs each target short and derandomized (reproducible in CI); `make fuzz` sets
FOREWARN_FUZZ_EXAMPLES (10,000) and every target runs that many cases, randomized, and the
number each ran is printed at the end.
"""

import os
import shutil
from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

from keys.keyring import ServiceKeyring
from tests.conftest import short_tempdir

FUZZ_EXAMPLES = int(os.environ.get("FOREWARN_FUZZ_EXAMPLES") or 0)
RAN: Counter[str] = Counter()  # examples run per target (counted in the test bodies)

_COMMON = {
    # Real gpg runs and a database: a slow example is not a failure; a hang is (deadline).
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    "deadline": timedelta(seconds=20),
    "database": None,  # no .hypothesis folder in the working tree
}
settings.register_profile("fuzz-short", derandomize=True, print_blob=False, **_COMMON)
settings.register_profile("fuzz-long", derandomize=False, print_blob=True, **_COMMON)
settings.load_profile("fuzz-long" if FUZZ_EXAMPLES else "fuzz-short")


def examples(short: int) -> settings:
    """The settings of one target: `short` cases in `make test`, FOREWARN_FUZZ_EXAMPLES in
    `make fuzz`."""
    return settings(max_examples=FUZZ_EXAMPLES or short)


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/fuzz/" in str(item.path):
            item.add_marker(pytest.mark.fuzz)


def pytest_terminal_summary(terminalreporter):
    if not RAN:
        return
    terminalreporter.section("fuzz: examples run per target")
    for target, count in sorted(RAN.items()):
        terminalreporter.write_line(f"{count:>8}  {target}")


@pytest.fixture(scope="session")
def service_keyring():
    """A service keyring for the fuzz session (the suite's `keyring` is per test)."""
    folder = short_tempdir("fwz")
    ring = ServiceKeyring(folder / "gpg")
    ring.generate("security@localhost")
    yield ring
    ring.stop_agent()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def openpgp_samples(service_keyring):
    """Real OpenPGP data for the strategies to cut up: (name, bytes), made by gpg and sqop."""
    from tests import keyfactory
    from tests import mailcorpus as mc

    service = service_keyring.export_public().encode()
    reporter = mc.make_reporter()
    text = b"The CAN driver overflows rx_buf.\n"
    return [
        ("service certificate", service),
        ("reporter certificate", reporter.cert),
        ("encrypted to the service", mc.gpg_encrypt(service, text)),
        ("signed and encrypted", mc.sqop_encrypt(service, text, signer=reporter)),
        ("binary encrypted", mc.gpg_encrypt(service, text, armor=False)),
        ("password encrypted", mc.password_encrypt(text)),
        ("clearsigned", mc.sqop_clearsign(reporter, text)),
        ("detached signature", mc.sqop_sign_detached(reporter, text)),
        ("armored literal", keyfactory.armored_message()),
    ]
