"""The `forewarn` command as an operator runs it: real subprocesses, exit codes, and errors that
are one line on stderr saying what to fix, never a traceback."""

import re
import shutil
import socket
import stat
import subprocess
import sys

import pytest

from app.core import passwords
from app.models import User
from keys.keyring import ServiceKeyring
from tests.conftest import free_port
from tests.openpgp import decrypted
from tests.test_keyring import make_plain_gpg_key

FINGERPRINT = re.compile(r"^service key: ([0-9A-F]{40})( \(generated\))?$", re.MULTILINE)
PASSWORD = "a long enough password"


def one_line_error(result: subprocess.CompletedProcess, *mentions: str) -> str:
    """The single `forewarn: ...` line a failed command printed; it names each of mentions."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("forewarn: "), line
    for mention in mentions:
        assert mention in line, (mention, line)
    return line


def service_key_of(output: str) -> tuple[str, bool]:
    """The fingerprint `init` or `key import` printed, and whether it was generated."""
    match = FINGERPRINT.search(output)
    assert match, output
    return match.group(1), match.group(2) is not None


def fingerprint_in(settings) -> str | None:
    ring = ServiceKeyring(settings.gnupg_home)
    try:
        return ring.fingerprint()
    finally:
        ring.stop_agent()


@pytest.fixture(scope="module")
def plain_key():
    return make_plain_gpg_key("operator@example.org")


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    return path


# -- init ---------------------------------------------------------------------------------------


@pytest.mark.db
def test_init_creates_a_private_instance_and_prints_the_service_key(forewarn, settings):
    assert not settings.instance.exists()

    result = forewarn("init")

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(settings.instance.stat().st_mode) == 0o700
    assert stat.S_IMODE(settings.gnupg_home.stat().st_mode) == 0o700
    assert "database: applied 0001_initial" in result.stdout
    fingerprint, generated = service_key_of(result.stdout)
    assert generated
    assert fingerprint_in(settings) == fingerprint


@pytest.mark.db
def test_init_twice_keeps_the_key_and_finds_the_schema_up_to_date(forewarn):
    first = forewarn("init")
    assert first.returncode == 0, first.stderr

    second = forewarn("init")

    assert second.returncode == 0, second.stderr
    assert "database: schema up to date" in second.stdout
    assert service_key_of(second.stdout) == (service_key_of(first.stdout)[0], False)


# -- key export / key import ---------------------------------------------------------------------


@pytest.mark.db
def test_exported_key_is_accepted_by_sequoia(forewarn, settings, tmp_path):
    assert forewarn("init").returncode == 0

    exported = forewarn("key", "export")

    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    cert = tmp_path / "service.asc"
    cert.write_text(exported.stdout)
    encrypted = subprocess.run(
        ["sqop", "encrypt", str(cert)], input=b"a report", capture_output=True, check=False
    )
    assert encrypted.returncode == 0, encrypted.stderr
    ring = ServiceKeyring(settings.gnupg_home)
    try:
        assert decrypted(ring, encrypted.stdout) == b"a report"
    finally:
        ring.stop_agent()


def test_key_export_before_init_asks_for_init_and_leaves_the_instance_private(forewarn, settings):
    result = forewarn("key", "export")

    one_line_error(result, "forewarn init")
    assert result.stdout == ""
    if settings.instance.exists():
        assert stat.S_IMODE(settings.instance.stat().st_mode) == 0o700


@pytest.mark.db
def test_imported_key_becomes_the_service_key_and_init_keeps_it(
    forewarn, settings, plain_key, tmp_path
):
    secret = tmp_path / "secret.asc"
    secret.write_bytes(plain_key.secret)

    imported = forewarn("key", "import", str(secret))

    assert imported.returncode == 0, imported.stderr
    assert service_key_of(imported.stdout) == (plain_key.fingerprint, False)
    assert stat.S_IMODE(settings.instance.stat().st_mode) == 0o700
    init = forewarn("init")
    assert init.returncode == 0, init.stderr
    assert service_key_of(init.stdout) == (plain_key.fingerprint, False)
    assert fingerprint_in(settings) == plain_key.fingerprint


@pytest.mark.db
def test_key_import_over_an_existing_service_key_is_refused(forewarn, plain_key, tmp_path):
    fingerprint, _ = service_key_of(forewarn("init").stdout)
    secret = tmp_path / "secret.asc"
    secret.write_bytes(plain_key.secret)

    one_line_error(forewarn("key", "import", str(secret)), fingerprint)

    assert service_key_of(forewarn("init").stdout) == (fingerprint, False)


def test_key_import_of_a_public_key_is_refused(forewarn, settings, plain_key, tmp_path):
    public = tmp_path / "public.asc"
    public.write_bytes(plain_key.public)

    one_line_error(forewarn("key", "import", str(public)), "--export-secret-keys")

    assert fingerprint_in(settings) is None


def test_key_import_of_a_missing_file_names_it(forewarn, tmp_path):
    missing = tmp_path / "nowhere.asc"

    one_line_error(forewarn("key", "import", str(missing)), str(missing))


def test_unreadable_passphrase_file_names_its_variable(forewarn, tmp_path):
    missing = tmp_path / "no-passphrase"

    result = forewarn("key", "export", extra_env={"FOREWARN_KEY_PASSPHRASE_FILE": str(missing)})

    one_line_error(result, "FOREWARN_KEY_PASSPHRASE_FILE", str(missing))


# -- admin create --------------------------------------------------------------------------------


def test_admin_create_makes_a_team_account_from_a_password_file(forewarn, db, password_file):
    result = forewarn(
        "admin",
        "create",
        "Ops@Example.org",
        "--password-file",
        str(password_file),
        "--role",
        "team",
    )

    assert result.returncode == 0, result.stderr
    assert "created team account ops@example.org" in result.stdout
    user = User.get(User.email == "ops@example.org")
    assert user.role == "team"
    assert passwords.check_password(user.password_hash, PASSWORD)


def test_admin_create_defaults_to_the_admin_role(forewarn, db, password_file):
    result = forewarn("admin", "create", "boss@example.org", "--password-file", str(password_file))

    assert result.returncode == 0, result.stderr
    assert User.get(User.email == "boss@example.org").role == "admin"


def test_admin_create_refuses_a_second_account_for_the_same_email(forewarn, db, password_file):
    args = ("admin", "create", "ops@example.org", "--password-file", str(password_file))
    assert forewarn(*args).returncode == 0

    one_line_error(forewarn(*args), "ops@example.org", "already exists")

    assert User.select().where(User.email == "ops@example.org").count() == 1


def test_admin_create_refuses_a_short_password(forewarn, db, tmp_path):
    short = tmp_path / "short"
    short.write_text("too short\n")

    one_line_error(
        forewarn("admin", "create", "ops@example.org", "--password-file", str(short)),
        "at least 12 characters",
    )

    assert not User.select().where(User.email == "ops@example.org").exists()


def test_admin_create_names_a_missing_password_file(forewarn, db, tmp_path):
    missing = tmp_path / "no-such-file"

    one_line_error(
        forewarn("admin", "create", "ops@example.org", "--password-file", str(missing)),
        str(missing),
    )

    assert not User.select().exists()


def test_admin_create_without_a_terminal_asks_for_a_password_file(forewarn, db):
    # input="" gives the command a pipe, not a terminal, on stdin.
    result = forewarn("admin", "create", "ops@example.org", input="")

    one_line_error(result, "--password-file")
    assert not User.select().exists()


@pytest.mark.db
def test_admin_create_before_init_asks_for_init(forewarn, password_file):
    # SQLite: the instance folder does not exist yet; PostgreSQL: the schema is empty.
    result = forewarn("admin", "create", "ops@example.org", "--password-file", str(password_file))

    one_line_error(result, "forewarn init")


# -- settings and the machine ---------------------------------------------------------------------


def test_unknown_database_scheme_names_the_variable(forewarn, settings):
    result = forewarn("init", extra_env={"FOREWARN_DATABASE_URL": "bogus://x"})

    one_line_error(result, "FOREWARN_DATABASE_URL", "bogus://x")
    assert not settings.instance.exists()


def test_unreachable_postgresql_names_the_variable_and_hides_the_password(forewarn):
    url = f"postgresql://forewarn:s3cret-pw@127.0.0.1:{free_port()}/forewarn"

    result = forewarn("init", extra_env={"FOREWARN_DATABASE_URL": url})

    line = one_line_error(result, "FOREWARN_DATABASE_URL")
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "127.0.0.1" in line


def test_instance_that_is_a_regular_file_names_the_variable(forewarn, settings):
    settings.instance.write_text("not a folder\n")

    one_line_error(forewarn("init"), "FOREWARN_INSTANCE", str(settings.instance))

    assert settings.instance.read_text() == "not a folder\n"


@pytest.mark.parametrize("command", [("init",), ("key", "export")], ids=["init", "key-export"])
def test_missing_gpg_says_how_to_install_it(forewarn, tmp_path, command):
    # An operator's PATH with Python on it but no GnuPG.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    assert shutil.which("gpg", path=str(bin_dir)) is None

    result = forewarn(*command, extra_env={"PATH": str(bin_dir)})

    one_line_error(result, "gpg not found", "apt-get install gnupg")


@pytest.mark.parametrize(
    "value", ["localhost", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:0", "127.0.0.1:70000"]
)
def test_bad_web_listen_names_the_variable(forewarn, value):
    result = forewarn("web", extra_env={"FOREWARN_WEB_LISTEN": value})

    one_line_error(result, "FOREWARN_WEB_LISTEN", repr(value))


def test_web_on_a_busy_port_names_the_variable(forewarn, db, env):
    host, _, port = env["FOREWARN_WEB_LISTEN"].rpartition(":")
    with socket.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()

        result = forewarn("web", timeout=30)

    one_line_error(result, "already in use", env["FOREWARN_WEB_LISTEN"], "FOREWARN_WEB_LISTEN")


def test_web_on_an_address_of_another_machine_names_the_variable(forewarn, db):
    # 192.0.2.0/24 is TEST-NET-1: never an address of this machine.
    listen = f"192.0.2.1:{free_port()}"

    result = forewarn("web", extra_env={"FOREWARN_WEB_LISTEN": listen}, timeout=30)

    one_line_error(result, "cannot listen", listen, "FOREWARN_WEB_LISTEN")


@pytest.mark.db
def test_web_before_init_asks_for_init(forewarn):
    one_line_error(forewarn("web", timeout=30), "forewarn init")


def test_help_lists_the_commands_without_touching_the_instance(forewarn, settings):
    result = forewarn("--help")

    assert result.returncode == 0, result.stderr
    for command in ("init", "up", "web", "intake", "worker", "key", "admin"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command
    assert not settings.instance.exists()


# -- team members' OpenPGP keys ------------------------------------------------------------------


def test_admin_key_sets_the_key_team_mail_is_encrypted_to(
    forewarn, db, password_file, plain_key, tmp_path
):
    from app.models import PublicKey

    assert forewarn("init").returncode == 0
    assert (
        forewarn(
            "admin",
            "create",
            "bob@example.org",
            "--password-file",
            str(password_file),
            "--role",
            "team",
        ).returncode
        == 0
    )
    cert = tmp_path / "bob.asc"
    cert.write_bytes(plain_key.public)
    result = forewarn("admin", "key", "bob@example.org", str(cert))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"mail to bob@example.org is now encrypted to {plain_key.fingerprint}"
    )
    key = PublicKey.get(PublicKey.owner == User.get(User.email == "bob@example.org"))
    assert (key.fingerprint, key.usable) == (plain_key.fingerprint, True)
    assert "PRIVATE" not in key.armored


def test_admin_key_refuses_what_is_not_one_public_certificate(
    forewarn, db, password_file, plain_key, tmp_path
):
    assert forewarn("init").returncode == 0
    forewarn("admin", "create", "bob@example.org", "--password-file", str(password_file))
    secret = tmp_path / "secret.asc"
    secret.write_bytes(plain_key.secret)
    one_line_error(forewarn("admin", "key", "bob@example.org", str(secret)), "secret")
    one_line_error(forewarn("admin", "key", "nobody@example.org", str(secret)), "no security-team")
